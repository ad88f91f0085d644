package store

import (
	"slices"
	"testing"
)

func TestToPositional(t *testing.T) {
	tests := []struct {
		in, want string
		order    []int
	}{
		{"SELECT 1", "SELECT 1", nil},
		{"INSERT INTO t VALUES ($1, $2), ($1, $3)", "INSERT INTO t VALUES (?, ?), (?, ?)", []int{0, 1, 0, 2}},
		{"SELECT $12 + $3", "SELECT ? + ?", []int{11, 2}},
		{`SELECT json_extract(a, '$.x'), '$1', "$2" FROM t WHERE b = $1`, `SELECT json_extract(a, '$.x'), '$1', "$2" FROM t WHERE b = ?`, []int{0}},
		{"SELECT 'it''s $1', $2", "SELECT 'it''s $1', ?", []int{1}},
		{"SELECT $1 -- not $2\n, /* nor $3 */ $4", "SELECT ? -- not $2\n, /* nor $3 */ ?", []int{0, 3}},
		{"SELECT $0, $, $a, 5$", "SELECT $0, $, $a, 5$", nil},
		{"SELECT $99999999999999999999999", "SELECT ?", []int{9_999_998}},
		{"SELECT 'unterminated $1", "SELECT 'unterminated $1", nil},
		{"SELECT $1 /* unterminated $2", "SELECT ? /* unterminated $2", []int{0}},
	}
	for _, tt := range tests {
		got, order := toPositional(tt.in)
		if got != tt.want || !slices.Equal(order, tt.order) {
			t.Errorf("toPositional(%q) = %q, %v; want %q, %v", tt.in, got, order, tt.want, tt.order)
		}
	}
}

func FuzzToPositional(f *testing.F) {
	for _, s := range []string{"SELECT $1, '$2' -- $3\n/* $4 */", "$", "'", "/*", "--", "$99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, order := toPositional(s)
		placeholders := 0
		for i := range len(got) {
			if got[i] == '?' {
				placeholders++
			}
		}
		for i := range len(s) {
			if s[i] == '?' {
				placeholders--
			}
		}
		if placeholders != len(order) {
			t.Fatalf("toPositional(%q) = %q with %d new placeholders, %d arguments", s, got, placeholders, len(order))
		}
		for _, i := range order {
			if i < 0 {
				t.Fatalf("toPositional(%q): argument index %d", s, i)
			}
		}
	})
}
