package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argonParams are argon2id's cost settings. The defaults follow OWASP's recommendation
// (19 MiB, two passes, one lane): a sign-in costs a few tens of milliseconds.
type argonParams struct {
	memoryKiB uint32
	passes    uint32
	lanes     uint8
}

var defaultArgon = argonParams{memoryKiB: 19 * 1024, passes: 2, lanes: 1}

const (
	saltLen = 16
	hashLen = 32
)

// MinPasswordLength is the shortest password an account may have.
const MinPasswordLength = 10

// hashPassword returns the password's argon2id hash in the PHC string format, which
// carries its parameters, so they can be raised later without breaking stored hashes.
func hashPassword(password string, p argonParams) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	sum := argon2.IDKey([]byte(password), salt, p.passes, p.memoryKiB, p.lanes, hashLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memoryKiB, p.passes, p.lanes,
		enc.EncodeToString(salt), enc.EncodeToString(sum)), nil
}

var errBadHash = errors.New("stored password hash is not an argon2id PHC string")

// checkPassword reports whether password matches the stored hash, in constant time.
func checkPassword(password, stored string) (bool, error) {
	parts := strings.Split(stored, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var p argonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memoryKiB, &p.passes, &p.lanes); err != nil || p.lanes == 0 {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.passes, p.memoryKiB, p.lanes, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
