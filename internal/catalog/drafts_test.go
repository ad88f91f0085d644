package catalog

import (
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/secret"
)

// FuzzDraftSecrets: whatever a draft holds, sealing leaves no secret header value in
// plain (only ciphertexts and the marker) and reading it back shows none at all.
func FuzzDraftSecrets(f *testing.F) {
	f.Add([]byte(`{"key": "crm", "nodes": [{"id": "call", "type": "http", "headers": {"X-Token": "t", "x-other": "o"}, "secret_headers": ["x-token"]}]}`))
	f.Add([]byte(`{"nodes": [{"id": "a", "type": "http", "headers": {"A": 1, "B": "[REDACTED]"}, "secret_headers": ["A", "B"]}, 7, null]}`))
	f.Add([]byte(`{"nodes": {"id": "a"}}`))
	kr := secret.Generate()
	f.Fuzz(func(t *testing.T, doc []byte) {
		sealed, err := SealDraft(kr, doc, nil)
		if err != nil {
			t.Fatalf("SealDraft: %v", err)
		}
		for at, v := range draftSecretValues(sealed) {
			if !strings.HasPrefix(v, secret.Prefix) {
				t.Fatalf("%v is in plain after sealing: %q", at, v)
			}
			if _, err := kr.Decrypt(v); err != nil {
				t.Fatalf("%v does not open: %v", at, err)
			}
		}
		if left := draftSecretValues(RedactSecrets(sealed)); len(left) > 0 {
			t.Fatalf("redacted draft still shows %v", left)
		}
	})
}
