package phone

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"919876543210", "+919876543210"},
		{"+919876543210", "+919876543210"},
		{" +91 98765-43210 ", "+919876543210"},
		{"(+91) 98765 43210", "+919876543210"},
		{"00919876543210", "+919876543210"},
		{"15550783881", "+15550783881"}, // Meta's test numbers are not assigned, yet usable
		{"+447911123456", "+447911123456"},
		{"4915112345678", "+4915112345678"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got.E164 != tt.want || got.Digits != tt.want[1:] {
			t.Errorf("Parse(%q) = %+v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", "   ", "abc", "+91abc9876543210", "12345", "9876543210123456789", "+0919876543210",
		"9++19876543210", "+999123456789", "919876", "+91 98765 43210 ext 5", "2147483648000000000000000000000000",
		"00490000000000000", // +49 0…: the trunk 0 would be dropped again on every parse
		"98010000",          // +98 0…: too short once the trunk 0 is dropped
	} {
		if got, err := Parse(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrInvalid", in, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"919876543210", "+919876543210", "(+91) 98765 43210", "0091", "+", "", "++1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if n.E164 != "+"+n.Digits || len(n.Digits) < 8 || len(n.Digits) > 15 {
			t.Fatalf("Parse(%q) = %+v: not E.164", s, n)
		}
		again, err := Parse(n.E164)
		if err != nil || again != n {
			t.Fatalf("Parse(%q) is not stable: %+v then %+v, %v", s, n, again, err)
		}
	})
}
