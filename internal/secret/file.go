package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileMode is the mode a generated key file gets: readable by its owner only.
const FileMode = 0o600

// LoadFile reads the keyring kept in the file at path (the format Parse reads, on one
// line), creating the file with a fresh key when it does not exist. created says it was
// made now. Creation is atomic: a process starting at the same moment (the CLI beside a
// server) reads the same key, never a half-written file.
func LoadFile(path string) (kr *Keyring, created bool, err error) {
	kr, err = readFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kr, false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, false, fmt.Errorf("create secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(FileMode); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("create secret key file: %w", err)
	}
	if _, err := tmp.WriteString(NewKey() + "\n"); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	// A hard link never replaces an existing file: whoever links first wins, and the
	// others read the winner's key.
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		created = true
	case errors.Is(err, fs.ErrExist):
	default:
		return nil, false, fmt.Errorf("create secret key file: %w", err)
	}
	kr, err = readFile(path)
	return kr, created && err == nil, err
}

func readFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kr, err := Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return kr, nil
}

// LaxMode reports whether the file at path can be read by others than its owner.
func LaxMode(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm()&0o077 != 0
}
