package flow

import (
	"maps"
	"strings"
	"testing"
)

func TestParseButtonPayload(t *testing.T) {
	long := strings.Repeat("k", 100)
	tests := []struct {
		name  string
		in    string
		key   string
		attrs map[string]string
		ok    bool
	}{
		{
			name:  "seed declined",
			in:    "flow_7bbb608c3b4b4e848f36cd2ccd7cfa35||data_personx_response=declined_invoice_no_12345",
			key:   "7bbb608c3b4b4e848f36cd2ccd7cfa35",
			attrs: map[string]string{"personx_response": "declined_invoice_no_12345"},
			ok:    true,
		},
		{
			name:  "seed approved",
			in:    "flow_e30d44bcca4c49d49976d3ac0416c405||data_personx_response=approved_invoice_no_12345",
			key:   "e30d44bcca4c49d49976d3ac0416c405",
			attrs: map[string]string{"personx_response": "approved_invoice_no_12345"},
			ok:    true,
		},
		{
			name:  "fixture upper-case key kept as given",
			in:    "flow_EBAE1F6090D54CC3B7689F02C04A004F||data_personx_response=declined_invoice_no_12345",
			key:   "EBAE1F6090D54CC3B7689F02C04A004F",
			attrs: map[string]string{"personx_response": "declined_invoice_no_12345"},
			ok:    true,
		},
		{
			name:  "two pairs split at the first underscore",
			in:    "flow_order||data_a=1_order_id=77",
			key:   "order",
			attrs: map[string]string{"a": "1", "order_id": "77"},
			ok:    true,
		},
		{
			name:  "three pairs, names with underscores",
			in:    "flow_k||data_first_name=Asha_last_name=Rao_invoice_no=INV_12",
			key:   "k",
			attrs: map[string]string{"first_name": "Asha", "last_name": "Rao", "invoice_no": "INV_12"},
			ok:    true,
		},
		{
			name:  "key alone",
			in:    "flow_order_update",
			key:   "order_update",
			attrs: map[string]string{},
			ok:    true,
		},
		{
			name:  "key with dash and digits",
			in:    "flow_default-fallback_74963",
			key:   "default-fallback_74963",
			attrs: map[string]string{},
			ok:    true,
		},
		{
			name:  "empty data part",
			in:    "flow_order||data_",
			key:   "order",
			attrs: map[string]string{},
			ok:    true,
		},
		{
			name:  "prefixes are case-insensitive",
			in:    "FLOW_Order||DATA_x=1",
			key:   "Order",
			attrs: map[string]string{"x": "1"},
			ok:    true,
		},
		{
			name:  "surrounding spaces trimmed",
			in:    "  flow_order||data_x=1 \n",
			key:   "order",
			attrs: map[string]string{"x": "1"},
			ok:    true,
		},
		{
			name:  "empty value",
			in:    "flow_order||data_x=",
			key:   "order",
			attrs: map[string]string{"x": ""},
			ok:    true,
		},
		{
			name:  "empty value in the middle",
			in:    "flow_order||data_x=_y=2",
			key:   "order",
			attrs: map[string]string{"x": "", "y": "2"},
			ok:    true,
		},
		{
			name:  "escaped underscore and equals in a middle value",
			in:    "flow_order||data_code=A%5FB%3DC_n=2",
			key:   "order",
			attrs: map[string]string{"code": "A_B=C", "n": "2"},
			ok:    true,
		},
		{
			name:  "escaped space, plus kept",
			in:    "flow_order||data_msg=hello%20world+again",
			key:   "order",
			attrs: map[string]string{"msg": "hello world+again"},
			ok:    true,
		},
		{
			name:  "bad escape kept as written",
			in:    "flow_order||data_pct=100%_x=1",
			key:   "order",
			attrs: map[string]string{"pct": "100%", "x": "1"},
			ok:    true,
		},
		{
			name:  "last value may contain spaces and pipes",
			in:    "flow_order||data_note=a b|c",
			key:   "order",
			attrs: map[string]string{"note": "a b|c"},
			ok:    true,
		},
		{
			name:  "dotted attribute name",
			in:    "flow_order||data_user.email=a@b.c",
			key:   "order",
			attrs: map[string]string{"user.email": "a@b.c"},
			ok:    true,
		},
		{
			name:  "repeated name: last wins",
			in:    "flow_order||data_x=1_x=2",
			key:   "order",
			attrs: map[string]string{"x": "2"},
			ok:    true,
		},
		{name: "100-char key", in: "flow_" + long, key: long, attrs: map[string]string{}, ok: true},
		{name: "101-char key", in: "flow_" + long + "k"},
		{name: "bare key is not a payload here", in: "order_update"},
		{name: "empty", in: ""},
		{name: "only prefix", in: "flow_"},
		{name: "prefix without key but data", in: "flow_||data_a=1"},
		{name: "key with bad character", in: "flow_or der"},
		{name: "key with dot", in: "flow_a.b"},
		{name: "unknown separator", in: "flow_order||meta_a=1"},
		{name: "single pipe", in: "flow_order|data_a=1"},
		{name: "trailing pipes", in: "flow_order||"},
		{name: "data without equals", in: "flow_order||data_abc"},
		{name: "middle segment without underscore", in: "flow_order||data_a=1=2"},
		{name: "empty name", in: "flow_order||data_=1"},
		{name: "empty second name", in: "flow_order||data_a=1_=2"},
		{name: "invalid name", in: "flow_order||data_a b=1"},
		{name: "name too long", in: "flow_order||data_" + strings.Repeat("n", 101) + "=1"},
		{name: "prefix not at start", in: "xflow_order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, attrs, ok := ParseButtonPayload(tt.in)
			if ok != tt.ok {
				t.Fatalf("ParseButtonPayload(%q) ok = %v, want %v (key %q attrs %v)", tt.in, ok, tt.ok, key, attrs)
			}
			if !ok {
				if key != "" || attrs != nil {
					t.Errorf("not ok but returned key %q attrs %v", key, attrs)
				}
				return
			}
			if key != tt.key {
				t.Errorf("key = %q, want %q", key, tt.key)
			}
			if !maps.Equal(attrs, tt.attrs) {
				t.Errorf("attrs = %v, want %v", attrs, tt.attrs)
			}
		})
	}
}

func FuzzParseButtonPayload(f *testing.F) {
	for _, s := range []string{
		"flow_7bbb608c3b4b4e848f36cd2ccd7cfa35||data_personx_response=declined_invoice_no_12345",
		"flow_e30d44bcca4c49d49976d3ac0416c405||data_personx_response=approved_invoice_no_12345",
		"flow_order||data_a=1_order_id=77",
		"flow_order||data_code=A%5FB%3DC_n=2",
		"FLOW_x||DATA_",
		"flow_order||data_a=1=2",
		"order_update",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, attrs, ok := ParseButtonPayload(s)
		if !ok {
			if key != "" || attrs != nil {
				t.Fatalf("not ok but returned key %q attrs %v", key, attrs)
			}
			return
		}
		if !ValidKey(key) {
			t.Fatalf("ok with invalid key %q", key)
		}
		if attrs == nil {
			t.Fatal("ok with nil attrs")
		}
		for name := range attrs {
			if !ValidAttributeName(name) {
				t.Fatalf("ok with invalid attribute name %q", name)
			}
		}
		// Parsing is a pure function of the trimmed text.
		k2, a2, ok2 := ParseButtonPayload(" " + s + " ")
		if !ok2 || k2 != key || !maps.Equal(a2, attrs) {
			t.Fatalf("padding changed the result: %q %v %v vs %q %v", k2, a2, ok2, key, attrs)
		}
	})
}
