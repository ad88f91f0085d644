package secret

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func mustParse(t *testing.T, s string) *Keyring {
	t.Helper()
	kr, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return kr
}

func TestRoundTripAndRotation(t *testing.T) {
	oldKey, newKey := NewKey(), NewKey()
	old := mustParse(t, oldKey)
	both := mustParse(t, newKey+", "+oldKey)
	fresh := mustParse(t, newKey)

	c, err := old.Encrypt("EAAG-token-1234")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c, "enc:v1:"+old.PrimaryID()+":") || strings.Contains(c, "EAAG") {
		t.Fatalf("ciphertext %q: want the v1 prefix with the key id and no plain text", c)
	}
	if c2, _ := old.Encrypt("EAAG-token-1234"); c2 == c {
		t.Fatal("two encryptions of one value are equal: the nonce is not random")
	}
	for name, kr := range map[string]*Keyring{"old": old, "new,old": both} {
		if p, err := kr.Decrypt(c); err != nil || p != "EAAG-token-1234" {
			t.Errorf("%s: Decrypt = %q, %v", name, p, err)
		}
	}
	if _, err := fresh.Decrypt(c); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), old.PrimaryID()) {
		t.Errorf("a keyring without the old key: error %v, want ErrUnknownKey naming key %s", err, old.PrimaryID())
	}
	var none *Keyring
	if _, err := none.Decrypt(c); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil keyring Decrypt: %v, want ErrNoKey", err)
	}
	if _, err := none.Encrypt("x"); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil keyring Encrypt: %v, want ErrNoKey", err)
	}

	// Rotation: the first key encrypts; values of other keys and plain text are redone.
	re, changed, err := both.Reencrypt(c)
	if err != nil || !changed || KeyOf(re) != fresh.PrimaryID() {
		t.Fatalf("Reencrypt = %q, %v, %v; want a ciphertext of key %s", re, changed, err, fresh.PrimaryID())
	}
	if p, err := fresh.Decrypt(re); err != nil || p != "EAAG-token-1234" {
		t.Fatalf("the new key alone opens the rotated value: %q, %v", p, err)
	}
	if again, changed, _ := both.Reencrypt(re); changed || again != re {
		t.Error("a value of the first key was encrypted again")
	}
	if re, changed, _ := both.Reencrypt("plain-legacy-token"); !changed || !IsEncrypted(re) {
		t.Errorf("plain text was not encrypted: %q, %v", re, changed)
	}
	if re, changed, _ := both.Reencrypt(""); changed || re != "" {
		t.Error("the empty value (unset) was changed")
	}
}

func TestDecrypt(t *testing.T) {
	kr := Generate()
	c, _ := kr.Encrypt("s3cret")
	head, data, _ := strings.Cut(strings.TrimPrefix(c, "enc:v1:"), ":")
	sealed, _ := base64.RawURLEncoding.DecodeString(data)
	sealed[len(sealed)-1] ^= 1
	tampered := "enc:v1:" + head + ":" + base64.RawURLEncoding.EncodeToString(sealed)
	tests := []struct {
		in, want, err string
	}{
		{"plain text stored before encryption", "plain text stored before encryption", ""},
		{"", "", ""},
		{c, "s3cret", ""},
		{tampered, "", "altered or corrupt"},
		{"enc:v2:abcd:xyz", "", "unknown ciphertext format"},
		{"enc:v1:" + kr.PrimaryID() + ":!!!", "", "malformed"},
		{"enc:v1:" + kr.PrimaryID() + ":" + base64.RawURLEncoding.EncodeToString([]byte("short")), "", "too short"},
	}
	for _, tt := range tests {
		got, err := kr.Decrypt(tt.in)
		if tt.err == "" && (err != nil || got != tt.want) {
			t.Errorf("Decrypt(%.20q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Decrypt(%.20q) error %v, want one mentioning %q", tt.in, err, tt.err)
		}
	}
}

func TestParse(t *testing.T) {
	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = byte(i)
	}
	id := KeyID(raw)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
		hex.EncodeToString(raw), " " + base64.StdEncoding.EncodeToString(raw) + " ,",
	} {
		kr, err := Parse(s)
		if err != nil || kr.PrimaryID() != id || len(kr.IDs()) != 1 {
			t.Errorf("Parse(%q) = %v, %v; want key %s", s, kr.IDs(), err, id)
		}
	}
	k := NewKey()
	for _, tt := range []struct{ in, err string }{
		{"", "none given"},
		{" , ", "none given"},
		{base64.StdEncoding.EncodeToString(raw[:16]), "16 bytes, want 32"},
		{"not a key at all!", "not base64 or hex"},
		{k + "," + k, "listed twice"},
		{k + ",tooshort", "secret key 2"},
	} {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Parse(%q) error %v, want one mentioning %q", tt.in, err, tt.err)
		}
		if err != nil && len(tt.in) > 8 && strings.Contains(err.Error(), tt.in) {
			t.Errorf("Parse error repeats the key: %v", err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db.key")
	// Processes starting together all end up with the one key that was written.
	const n = 8
	ids := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kr, c, err := LoadFile(path)
			if err != nil {
				t.Errorf("LoadFile: %v", err)
				return
			}
			ids[i], created[i] = kr.PrimaryID(), c
		}()
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if ids[i] != ids[0] {
			t.Fatalf("concurrent loads got keys %v", ids)
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Fatalf("%d loads say they created the file, want 1", nCreated)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != FileMode || LaxMode(path) {
		t.Fatalf("key file mode %v, %v; want %v", fi.Mode(), err, os.FileMode(FileMode))
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left beside the key: %v", entries)
	}
	kr, c, err := LoadFile(path)
	if err != nil || c || kr.PrimaryID() != ids[0] {
		t.Fatalf("reload = %v, %v, %v; want key %s, not created", kr.IDs(), c, err, ids[0])
	}

	// A file holding a rotation list works like the variable.
	k2 := NewKey()
	old, _ := os.ReadFile(path)
	_ = os.WriteFile(path, []byte(k2+","+strings.TrimSpace(string(old))+"\n"), 0o600)
	_ = os.Chmod(path, 0o644)
	kr, _, err = LoadFile(path)
	if err != nil || len(kr.IDs()) != 2 || kr.IDs()[1] != ids[0] || !LaxMode(path) {
		t.Fatalf("rotation list in the file: %v, %v", kr.IDs(), err)
	}
	_ = os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a corrupt key file: %v, want an error naming it", err)
	}
}
