// Package secret encrypts the secrets Parley keeps in its database (channel credentials,
// http-step headers marked secret) with AES-256-GCM. A Keyring holds one or more keys:
// the first encrypts, every one decrypts, so keys can be rotated without downtime.
//
// A ciphertext is text that says how to read it: "enc:v1:<key id>:<base64url(nonce |
// sealed)>". The key id is a fingerprint of the key, so a value names the key it needs
// and a missing key is reported as such rather than as corrupt data. A value without the
// prefix is a plain-text secret stored before encryption existed; Decrypt returns it as
// it is, and the next write (or `parley secrets rotate`) encrypts it.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// Prefix starts every ciphertext; the version after it names the format.
const Prefix = "enc:"

const v1 = Prefix + "v1:"

// ErrNoKey is returned when a secret must be encrypted or decrypted and no key is
// configured.
var ErrNoKey = errors.New("no secret key is configured (set PARLEY_SECRET_KEY)")

// ErrUnknownKey wraps the error of a ciphertext made with a key the keyring lacks.
var ErrUnknownKey = errors.New("secret encrypted with a key that is not configured")

// Keyring encrypts with its first key and decrypts with any. A nil *Keyring has no keys:
// it decrypts plain text only, and refuses to encrypt. It is safe for concurrent use.
type Keyring struct {
	keys []key
}

type key struct {
	id   string
	aead cipher.AEAD
}

// Parse reads a comma-separated list of keys, each 32 bytes in standard or URL-safe
// base64 (padded or not) or in hex; the first is the one that encrypts. Spaces around
// entries are ignored; a repeated key is an error, so is a list without any.
func Parse(s string) (*Keyring, error) {
	kr := &Keyring{}
	seen := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		raw, err := decodeKey(part)
		if err != nil {
			return nil, fmt.Errorf("secret key %d: %w", i+1, err)
		}
		k, err := newKey(raw)
		if err != nil {
			return nil, fmt.Errorf("secret key %d: %w", i+1, err)
		}
		if seen[k.id] {
			return nil, fmt.Errorf("secret key %d: key %s is listed twice", i+1, k.id)
		}
		seen[k.id] = true
		kr.keys = append(kr.keys, k)
	}
	if len(kr.keys) == 0 {
		return nil, errors.New("secret key: none given")
	}
	return kr, nil
}

// decodeKey accepts 64 hex digits or base64 of 32 bytes. The error never repeats the
// input, which is (nearly) a key.
func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("%d bytes, want %d (e.g. `openssl rand -base64 32`)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64 or hex of %d bytes (e.g. `openssl rand -base64 32`)", KeySize)
}

func newKey(raw []byte) (key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{id: KeyID(raw), aead: aead}, nil
}

// KeyID is the fingerprint naming a key in ciphertexts: 8 hex digits of a SHA-256 of
// the key under a fixed label. It tells keys apart and reveals nothing usable of one.
func KeyID(raw []byte) string {
	h := sha256.Sum256(append([]byte("parley secret key id\x00"), raw...))
	return hex.EncodeToString(h[:4])
}

// NewKey returns a fresh random key, base64-encoded as Parse reads it.
func NewKey() string {
	var b [KeySize]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return base64.StdEncoding.EncodeToString(b[:])
}

// Generate returns a keyring of one fresh random key (tests, throwaway databases).
func Generate() *Keyring {
	kr, err := Parse(NewKey())
	if err != nil {
		panic(err) // a fresh key always parses
	}
	return kr
}

// Configured reports whether the keyring has a key to encrypt with.
func (kr *Keyring) Configured() bool { return kr != nil && len(kr.keys) > 0 }

// PrimaryID is the id of the key that encrypts ("" without keys).
func (kr *Keyring) PrimaryID() string {
	if !kr.Configured() {
		return ""
	}
	return kr.keys[0].id
}

// IDs lists the ids of the keyring's keys, the encrypting one first.
func (kr *Keyring) IDs() []string {
	if kr == nil {
		return nil
	}
	out := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		out[i] = k.id
	}
	return out
}

// Has reports whether the keyring holds the key with this id.
func (kr *Keyring) Has(id string) bool {
	return kr.find(id) != nil
}

func (kr *Keyring) find(id string) *key {
	if kr == nil {
		return nil
	}
	for i := range kr.keys {
		if kr.keys[i].id == id {
			return &kr.keys[i]
		}
	}
	return nil
}

// Encrypt seals plain with the first key. The empty string stays empty: it stands for
// "not set" wherever secrets are kept.
func (kr *Keyring) Encrypt(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	if !kr.Configured() {
		return "", ErrNoKey
	}
	k := kr.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret: nonce: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(plain), []byte(k.id))
	return v1 + k.id + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value Encrypt made with any key of the keyring. A value that is not
// a ciphertext (no "enc:" prefix) is returned as it is: a secret stored in plain text.
// A ciphertext of a key the keyring lacks gives an error wrapping ErrUnknownKey.
func (kr *Keyring) Decrypt(s string) (string, error) {
	id, data, ok, err := split(s)
	if err != nil || !ok {
		return s, err
	}
	k := kr.find(id)
	if k == nil {
		if !kr.Configured() {
			return "", fmt.Errorf("%w (key %s): %w", ErrUnknownKey, id, ErrNoKey)
		}
		return "", fmt.Errorf("%w: key %s (configured: %s)", ErrUnknownKey, id, strings.Join(kr.IDs(), ", "))
	}
	ns := k.aead.NonceSize()
	if len(data) < ns+k.aead.Overhead() {
		return "", errors.New("secret: ciphertext too short")
	}
	plain, err := k.aead.Open(nil, data[:ns], data[ns:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("secret: key %s does not open the value (altered or corrupt)", id)
	}
	return string(plain), nil
}

// IsEncrypted reports whether s is a ciphertext (of any key).
func IsEncrypted(s string) bool { return strings.HasPrefix(s, Prefix) }

// KeyOf returns the id of the key that made ciphertext s, "" when s is not one.
func KeyOf(s string) string {
	id, _, ok, err := split(s)
	if err != nil || !ok {
		return ""
	}
	return id
}

// Current reports whether s needs no re-encryption: it is empty, or a ciphertext of the
// keyring's encrypting key.
func (kr *Keyring) Current(s string) bool {
	return s == "" || (kr.Configured() && KeyOf(s) == kr.PrimaryID())
}

// Reencrypt returns s encrypted with the first key, and whether that changed it: plain
// text is encrypted, a ciphertext of another key is opened and sealed again, and a
// ciphertext of the first key is left alone.
func (kr *Keyring) Reencrypt(s string) (string, bool, error) {
	if kr.Current(s) {
		return s, false, nil
	}
	plain, err := kr.Decrypt(s)
	if err != nil {
		return s, false, err
	}
	out, err := kr.Encrypt(plain)
	if err != nil {
		return s, false, err
	}
	return out, true, nil
}

// split takes a ciphertext apart; ok is false for plain text.
func split(s string) (id string, data []byte, ok bool, err error) {
	if !strings.HasPrefix(s, Prefix) {
		return "", nil, false, nil
	}
	rest, found := strings.CutPrefix(s, v1)
	if !found {
		return "", nil, false, fmt.Errorf("secret: unknown ciphertext format %q", version(s))
	}
	id, enc, found := strings.Cut(rest, ":")
	if !found || id == "" {
		return "", nil, false, errors.New("secret: malformed ciphertext")
	}
	data, err = base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", nil, false, errors.New("secret: malformed ciphertext")
	}
	return id, data, true, nil
}

// version returns the "enc:vN" head of s for an error message, without the data.
func version(s string) string {
	head, _, _ := strings.Cut(strings.TrimPrefix(s, Prefix), ":")
	if len(head) > 8 {
		head = head[:8]
	}
	return Prefix + head
}
