// Package sanitize checks and cleans the text Parley stores. PostgreSQL refuses NUL
// characters in text and jsonb and bytes that are not UTF-8, so every string that comes
// from outside passes here before it reaches the database: requests from API callers
// are refused with a reason (Check, Find), while what providers deliver, which must be
// kept, is cleaned (Clean). It also holds the size limits shared by the API, the CLI
// and the engine.
package sanitize

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on stored text, in characters (Unicode code points).
const (
	// MaxAttrValue bounds a user attribute's value.
	MaxAttrValue = 4096
	// MaxText bounds the stored text of a message a user sends: the longest text the
	// WhatsApp Cloud API sends, and an attribute's limit, so a reply saved by an input
	// node fits.
	MaxText = 4096
	// MaxName bounds the names of customers, bots and flows.
	MaxName = 200
)

// Reasons a string is refused.
var (
	ErrNUL     = errors.New("contains a NUL character (\\u0000), which cannot be stored")
	ErrInvalid = errors.New("is not valid UTF-8")
)

// Check reports whether s can be stored: valid UTF-8 without NUL.
func Check(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return ErrNUL
	}
	if !utf8.ValidString(s) {
		return ErrInvalid
	}
	return nil
}

// Clean returns s fit to store: NUL characters removed and invalid UTF-8 replaced with
// U+FFFD. It returns s itself when nothing needs cleaning.
func Clean(s string) string {
	if Check(s) == nil {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// CleanBytes is Clean for raw JSON and other byte strings.
func CleanBytes(b []byte) []byte {
	if Check(string(b)) == nil {
		return b
	}
	return []byte(Clean(string(b)))
}

// Len counts the characters of s.
func Len(s string) int { return utf8.RuneCountInString(s) }

// Truncate cuts s to at most n characters, never inside one.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s // fewer bytes than n: fewer characters too
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// CheckName checks the name of a customer, bot or flow (already trimmed): storable, at
// most MaxName characters, without control characters.
func CheckName(name string) error {
	if err := Check(name); err != nil {
		return err
	}
	if n := Len(name); n > MaxName {
		return fmt.Errorf("is %d characters long; the limit is %d", n, MaxName)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return errors.New("contains a control character (a line break, tab, ...)")
	}
	return nil
}

// Find looks through v (a decoded JSON value, a struct with JSON tags, or anything made
// of them) for the first string, map key included, that Check refuses. It returns the
// JSON path of that string ("payload.components[0].text") and why, or "" and nil. Map
// keys are visited in sorted order, so the answer is the same every time.
func Find(v any) (string, error) {
	return find("", reflect.ValueOf(v))
}

func find(path string, v reflect.Value) (string, error) {
	switch v.Kind() {
	case reflect.Invalid:
		return "", nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", nil
		}
		return find(path, v.Elem())
	case reflect.String:
		if err := Check(v.String()); err != nil {
			return path, err
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !(f.Anonymous && reflect.Indirect(v.Field(i)).Kind() == reflect.Struct) {
				continue // encoding/json reads the fields of embedded structs, exported or not
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			p := path
			if !(f.Anonymous && name == "") { // embedded structs' fields sit at the same level
				if name == "" {
					name = f.Name
				}
				p = join(path, name)
			}
			if p, err := find(p, v.Field(i)); err != nil {
				return p, err
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		if v.Type().Key().Kind() == reflect.String {
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		}
		for _, k := range keys {
			name := fmt.Sprint(k) // not k.Interface(), which panics for unexported fields
			if k.Kind() == reflect.String {
				if err := Check(k.String()); err != nil {
					return join(path, strconv.QuoteToASCII(k.String())), fmt.Errorf("(a name) %w", err)
				}
			}
			if p, err := find(join(path, name), v.MapIndex(k)); err != nil {
				return p, err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", nil // raw bytes (json.RawMessage): not text of ours
		}
		for i := range v.Len() {
			if p, err := find(path+"["+strconv.Itoa(i)+"]", v.Index(i)); err != nil {
				return p, err
			}
		}
	}
	return "", nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
