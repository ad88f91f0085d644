package httpstep

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/internal/flow"
)

// Messages the console and the step's logs show, word for word as the vendor shows them.
const (
	MappingNotDone   = "Response Mapping Not Done, Only JSON can be mapped as Response"
	StructureChanged = "JSON Structure Change Detected"
)

// MaxLeaves caps how many paths one response offers, so a huge list cannot flood a run's
// state. Walking is in sorted key order, so the same response always keeps the same ones.
const MaxLeaves = 2000

// maxDepth bounds how deep Leaves and Shape descend. A path that deep could never be
// referenced anyway (a reference is at most 100 characters), and the bound keeps Shape,
// which writes a line per container, from growing with the square of the nesting.
const maxDepth = 64

// maxShapeEntries caps the number of distinct paths in a shape.
const maxShapeEntries = 2000

// Leaves lists every leaf of a decoded JSON value (as from encoding/json, with or without
// UseNumber) by its path: object members by key, array elements by index, joined by dots
// ("items.0.sku"). Numbers keep their original text when decoded with UseNumber, booleans
// are "true"/"false" and null is "". Members whose key could not be written in a path
// (empty, or holding a dot or other characters flow.ValidPath refuses) are skipped with
// everything under them. A scalar at the top has no path and gives no leaves.
func Leaves(v any) map[string]string {
	out := make(map[string]string)
	walkLeaves(v, make([]byte, 0, 64), 0, out)
	return out
}

func walkLeaves(v any, path []byte, depth int, out map[string]string) {
	if len(out) >= MaxLeaves {
		return
	}
	switch t := v.(type) {
	case map[string]any:
		if depth >= maxDepth {
			return
		}
		for _, k := range sortedKeys(t) {
			if !validSegment(k) {
				continue
			}
			walkLeaves(t[k], appendSegment(path, k), depth+1, out)
			if len(out) >= MaxLeaves {
				return
			}
		}
	case []any:
		if depth >= maxDepth {
			return
		}
		for i, e := range t {
			walkLeaves(e, appendSegment(path, strconv.Itoa(i)), depth+1, out)
			if len(out) >= MaxLeaves {
				return
			}
		}
	default:
		if len(path) > 0 {
			out[string(path)] = leafText(v)
		}
	}
}

// Lookup returns the leaf at path, as "{{node.path}}" and save read it.
func Lookup(leaves map[string]string, path string) (string, bool) {
	v, ok := leaves[strings.TrimSpace(path)]
	return v, ok
}

func leafText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return fmt.Sprint(t)
	}
}

// validSegment reports whether k can be one segment of a path: flow.ValidPath accepts it
// and it holds no dot (which would make it read as two segments).
func validSegment(k string) bool {
	return !strings.Contains(k, ".") && flow.ValidPath(k)
}

func appendSegment(path []byte, seg string) []byte {
	if len(path) > 0 {
		path = append(path, '.')
	}
	return append(path, seg...)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// JSON types as Shape names them.
const (
	typeObject     = "object"
	typeArray      = "array"
	typeEmptyArray = "empty_array"
	typeString     = "string"
	typeNumber     = "number"
	typeBool       = "boolean"
	typeNull       = "null"
)

// Shape returns a fingerprint of the structure of a decoded JSON value: one line per path,
// "$.items.[].sku string", sorted. Array elements share the path segment "[]" and their
// shapes are merged, so the length of a list never matters. Only members Leaves would map
// count. Compare two shapes with ShapeChanged, not ==: an empty array, or a null where a
// value used to be, is not a change of structure.
func Shape(v any) string {
	entries := make(map[string]string)
	walkShape(v, "$", 0, entries)
	lines := make([]string, 0, len(entries))
	for p, typ := range entries {
		lines = append(lines, p+" "+typ)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func walkShape(v any, path string, depth int, entries map[string]string) {
	typ := jsonType(v)
	if old, ok := entries[path]; ok {
		typ = mergeTypes(old, typ)
	} else if len(entries) >= maxShapeEntries {
		return
	}
	entries[path] = typ
	if depth >= maxDepth {
		return
	}
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			if validSegment(k) {
				walkShape(t[k], path+"."+k, depth+1, entries)
			}
		}
	case []any:
		elem := path + ".[]"
		for _, e := range t {
			walkShape(e, elem, depth+1, entries)
		}
	}
}

func jsonType(v any) string {
	switch t := v.(type) {
	case nil:
		return typeNull
	case map[string]any:
		return typeObject
	case []any:
		if len(t) == 0 {
			return typeEmptyArray
		}
		return typeArray
	case string:
		return typeString
	case bool:
		return typeBool
	default: // json.Number, float64
		return typeNumber
	}
}

// mergeTypes combines the types seen at one path across the elements of an array: null
// gives way to any value, an empty array to a filled one, and other mixes become a sorted
// union such as "number|string".
func mergeTypes(a, b string) string {
	switch {
	case a == b:
		return a
	case a == typeNull:
		return b
	case b == typeNull:
		return a
	case a == typeEmptyArray && b == typeArray, a == typeArray && b == typeEmptyArray:
		return typeArray
	}
	set := strings.Split(a, "|")
	for _, t := range strings.Split(b, "|") {
		if !slices.Contains(set, t) {
			set = append(set, t)
		}
	}
	slices.Sort(set)
	return strings.Join(set, "|")
}

// ShapeChanged reports whether current (a Shape) differs in structure from recorded, the
// shape kept from the first successful call. Paths added, removed or retyped are changes;
// a path that is null on one side, or an array that is empty on one side, is not, and
// neither is anything beneath it.
func ShapeChanged(recorded, current string) bool {
	if recorded == current {
		return false
	}
	a, b := parseShape(recorded), parseShape(current)
	// Paths present on both sides whose difference does not count, nor anything under them.
	lenient := make(map[string]bool)
	for p, ta := range a {
		if tb, ok := b[p]; ok && ta != tb && lenientPair(ta, tb) {
			lenient[p] = true
		}
	}
	differs := func(p string, x, y map[string]string) bool {
		tx, inX := x[p]
		ty, inY := y[p]
		if inX && inY && (tx == ty || lenient[p]) {
			return false
		}
		return !underLenient(p, lenient)
	}
	for p := range a {
		if differs(p, a, b) {
			return true
		}
	}
	for p := range b {
		if differs(p, b, a) {
			return true
		}
	}
	return false
}

// lenientPair reports whether one path typed ta in one shape and tb in the other is the
// same structure: a null stands for any value, and an empty array for any array.
func lenientPair(ta, tb string) bool {
	if ta == typeNull || tb == typeNull {
		return true
	}
	return (ta == typeEmptyArray && tb == typeArray) || (ta == typeArray && tb == typeEmptyArray)
}

// underLenient reports whether a strict ancestor of p is lenient.
func underLenient(p string, lenient map[string]bool) bool {
	if len(lenient) == 0 {
		return false
	}
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '.' && lenient[p[:i]] {
			return true
		}
	}
	return false
}

func parseShape(s string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		if p, t, ok := strings.Cut(line, " "); ok {
			m[p] = t
		}
	}
	return m
}
