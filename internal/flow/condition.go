package flow

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Condition is either a group (All or Any of nested conditions) or one test of an
// attribute: {"attribute": "user_type", "op": "eq", "value": "vip"}.
type Condition struct {
	All []Condition `json:"all,omitempty"`
	Any []Condition `json:"any,omitempty"`

	Attribute string `json:"attribute,omitempty"`
	Op        string `json:"op,omitempty"`
	// Value is a string (with {{...}} references), a number, a boolean, or for "in" a
	// list of those.
	Value any `json:"value,omitempty"`

	re *regexp.Regexp
}

// Operators. Text comparisons ignore case and surrounding spaces, since they usually test
// what people typed; "matches" is a case-sensitive RE2 regular expression (add (?i)).
const (
	OpEq         = "eq"
	OpNe         = "ne"
	OpContains   = "contains"
	OpStartsWith = "starts_with"
	OpGt         = "gt"
	OpGte        = "gte"
	OpLt         = "lt"
	OpLte        = "lte"
	OpExists     = "exists"
	OpNotExists  = "not_exists"
	OpMatches    = "matches"
	OpIn         = "in"
)

const maxConditionDepth = 8

func (c *checker) condition(id, field string, cond *Condition, depth int) {
	if depth > maxConditionDepth {
		c.add(id, field, "conditions nest deeper than %d", maxConditionDepth)
		return
	}
	group := len(cond.All) > 0 || len(cond.Any) > 0
	test := cond.Attribute != "" || cond.Op != ""
	switch {
	case group && test:
		c.add(id, field, "a condition is either a group (all/any) or a test (attribute/op), not both")
		return
	case len(cond.All) > 0 && len(cond.Any) > 0:
		c.add(id, field, "use all or any, not both; nest one inside the other")
		return
	case !group && !test:
		c.add(id, field, "empty condition: give all, any, or attribute and op")
		return
	}
	for i := range cond.All {
		c.condition(id, fmt.Sprintf("%s.all[%d]", field, i), &cond.All[i], depth+1)
	}
	for i := range cond.Any {
		c.condition(id, fmt.Sprintf("%s.any[%d]", field, i), &cond.Any[i], depth+1)
	}
	if !test {
		return
	}
	if !ValidAttributeName(cond.Attribute) {
		c.add(id, field+".attribute", "%q is not a valid attribute name", cond.Attribute)
	}
	switch cond.Op {
	case OpExists, OpNotExists:
		if cond.Value != nil {
			c.add(id, field+".value", "%s takes no value", cond.Op)
		}
	case OpEq, OpNe, OpContains, OpStartsWith:
		if _, ok := scalarString(cond.Value); !ok {
			c.add(id, field+".value", "%s needs a string, number or boolean value", cond.Op)
		}
	case OpGt, OpGte, OpLt, OpLte:
		s, ok := scalarString(cond.Value)
		if _, err := strconv.ParseFloat(s, 64); !ok || (err != nil && len(References(s)) == 0) {
			c.add(id, field+".value", "%s needs a number", cond.Op)
		}
	case OpMatches:
		s, ok := cond.Value.(string)
		if !ok {
			c.add(id, field+".value", "matches needs a regular expression string")
		} else if re, err := regexp.Compile(s); err != nil {
			c.add(id, field+".value", "bad regular expression: %v", err)
		} else {
			cond.re = re // compiled once here; Eval only reads it
		}
	case OpIn:
		list, ok := cond.Value.([]any)
		if !ok || len(list) == 0 {
			c.add(id, field+".value", "in needs a non-empty list")
			break
		}
		for _, v := range list {
			if _, ok := scalarString(v); !ok {
				c.add(id, field+".value", "in takes a list of strings, numbers or booleans")
				break
			}
		}
	default:
		c.add(id, field+".op", "%q is not one of eq, ne, contains, starts_with, gt, gte, lt, lte, exists, not_exists, matches, in", cond.Op)
	}
}

// scalarString renders a JSON scalar the way attributes are stored.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// Eval reports whether the condition holds. Values are rendered with lookup first, so
// "value": "{{threshold}}" compares against another attribute.
func (cond *Condition) Eval(lookup Lookup) bool {
	if len(cond.All) > 0 {
		for i := range cond.All {
			if !cond.All[i].Eval(lookup) {
				return false
			}
		}
		return true
	}
	if len(cond.Any) > 0 {
		for i := range cond.Any {
			if cond.Any[i].Eval(lookup) {
				return true
			}
		}
		return false
	}
	actual, present := lookup(cond.Attribute)
	present = present && actual != ""
	want := func(v any) string {
		s, _ := scalarString(v)
		return Render(s, lookup, EscapeNone)
	}
	switch cond.Op {
	case OpExists:
		return present
	case OpNotExists:
		return !present
	case OpEq:
		return foldEq(actual, want(cond.Value))
	case OpNe:
		return !foldEq(actual, want(cond.Value))
	case OpContains:
		return strings.Contains(strings.ToLower(actual), strings.ToLower(strings.TrimSpace(want(cond.Value))))
	case OpStartsWith:
		return strings.HasPrefix(strings.ToLower(strings.TrimSpace(actual)), strings.ToLower(strings.TrimSpace(want(cond.Value))))
	case OpGt, OpGte, OpLt, OpLte:
		a, err1 := strconv.ParseFloat(strings.TrimSpace(actual), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(want(cond.Value)), 64)
		if err1 != nil || err2 != nil {
			return false
		}
		switch cond.Op {
		case OpGt:
			return a > b
		case OpGte:
			return a >= b
		case OpLt:
			return a < b
		default:
			return a <= b
		}
	case OpMatches:
		re := cond.re
		if re == nil { // a condition built in code rather than parsed
			s, _ := cond.Value.(string)
			var err error
			if re, err = regexp.Compile(s); err != nil {
				return false
			}
		}
		return re.MatchString(actual)
	case OpIn:
		list, _ := cond.Value.([]any)
		for _, v := range list {
			if foldEq(actual, want(v)) {
				return true
			}
		}
	}
	return false
}

func foldEq(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}
