package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// exactMembers refuses what encoding/json lets through although the flow's JSON Schema
// does not: a member whose name matches a field only when case is ignored ("Next" for
// "next"), and null in place of a typed value. So a document means the same to Parse as
// to the schema, and nothing is silently dropped. It runs after the strict decode, which
// has reported syntax and type errors; path names the member for the message.
func exactMembers(data []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		if t.Kind() == reflect.Interface {
			return nil
		}
		return fmt.Errorf("%snull is not a value here: leave the member out", prefix(path))
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return nil
		}
		fields := jsonFields(t)
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("%sunknown field %q", prefix(path), k)
			}
			if err := exactMembers(m[k], ft, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // json.RawMessage: checked where it is decoded
			return nil
		}
		var a []json.RawMessage
		if json.Unmarshal(data, &a) != nil {
			return nil
		}
		for i, v := range a {
			if err := exactMembers(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return nil
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if err := exactMembers(m[k], t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonFields maps the JSON member names of struct t to their types, with the fields of
// embedded structs (msg.Content) promoted.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}
