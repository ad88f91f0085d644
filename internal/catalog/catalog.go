// Package catalog stores a bot's flow documents: import (validate, key, version, encrypt
// secret headers) and export (secrets redacted). The CLI, the admin API and the demo all
// import and export through it.
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// NewFlowKey returns a random flow key: 32 uppercase hex characters.
func NewFlowKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// MaxDocumentSize bounds a flow document, from the admin API (whose body limit is the
// same) or the command line.
const MaxDocumentSize = 1 << 20

// Validate checks doc as Import does, without storing it. The error is a
// flow.ValidationErrors when the document is not valid.
func Validate(doc []byte) (*flow.Flow, error) {
	if len(doc) > MaxDocumentSize {
		return nil, flow.ValidationErrors{{Msg: fmt.Sprintf("the document is %d bytes, more than the limit of %d (1 MiB)", len(doc), MaxDocumentSize)}}
	}
	return flow.Parse(doc)
}

// Import validates doc and stores it as the next version of the bot's flow with the
// document's key, or with a generated key when the document has none. The error is a
// flow.ValidationErrors when the document is not valid.
//
// The values of http nodes' secret headers are stored encrypted with the store's
// keyring. A secret value that is flow.RedactedSecret, as Export shows it, keeps the
// value the flow's current version has for the same node and header, so that a document
// exported, edited and imported again (by hand or by a flow builder) keeps its secrets.
func Import(ctx context.Context, st *store.Store, botID int64, doc []byte) (store.FlowRecord, error) {
	return ImportAs(ctx, st, botID, doc, "")
}

// ImportAs is Import recording who published the version (a console user's email,
// "admin token", "cli").
func ImportAs(ctx context.Context, st *store.Store, botID int64, doc []byte, publishedBy string) (store.FlowRecord, error) {
	f, err := Validate(doc)
	if err != nil {
		return store.FlowRecord{}, err
	}
	if f.Key == "" {
		f.Key = NewFlowKey()
	}
	if err := sealSecrets(ctx, st, botID, f); err != nil {
		return store.FlowRecord{}, err
	}
	// Store the normalised document, so an export is a clean, importable file.
	norm, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return store.FlowRecord{}, fmt.Errorf("encode flow: %w", err)
	}
	return st.SaveFlow(ctx, botID, f.Key, f.Name, norm, publishedBy)
}

// Export returns the current version of the bot's flow with the values of its secret
// headers replaced by flow.RedactedSecret: what the admin API and the CLI show.
func Export(ctx context.Context, st *store.Store, botID int64, key string) (store.FlowRecord, error) {
	rec, err := st.FlowByKey(ctx, botID, key)
	if err != nil {
		return store.FlowRecord{}, err
	}
	f, err := flow.Parse(rec.Document)
	if err != nil {
		return store.FlowRecord{}, fmt.Errorf("stored flow %s v%d: %w", rec.Key, rec.Version, err)
	}
	if !forEachSecret(f, func(_ *flow.HTTPNode, _ string, v *string) error { *v = flow.RedactedSecret; return nil }) {
		return rec, nil
	}
	if rec.Document, err = json.MarshalIndent(f, "", "  "); err != nil {
		return store.FlowRecord{}, fmt.Errorf("encode flow: %w", err)
	}
	return rec, nil
}

// forEachSecret calls fn with every secret header value of f's http nodes, in a stable
// order, after giving each such node a headers map of its own (so fn may change values
// of a flow that shares maps with a cached one). It reports whether there was any; it
// stops at fn's first error, which Import and Reencrypt get back through their closures.
func forEachSecret(f *flow.Flow, fn func(n *flow.HTTPNode, header string, value *string) error) bool {
	found := false
	for _, node := range f.Nodes {
		n, ok := node.(*flow.HTTPNode)
		if !ok || len(n.SecretHeaders) == 0 {
			continue
		}
		n.Headers = maps.Clone(n.Headers)
		for _, name := range slices.Sorted(maps.Keys(n.Headers)) {
			if !n.IsSecretHeader(name) {
				continue
			}
			found = true
			v := n.Headers[name]
			if err := fn(n, name, &v); err != nil {
				return found
			}
			n.Headers[name] = v
		}
	}
	return found
}

// sealSecrets encrypts f's secret header values in place, taking the stored value for
// each one that is flow.RedactedSecret. Every other value is taken as typed: a document
// from the database (a version restored, a draft published) has its values opened first
// (OpenSecrets), so a ciphertext from outside is never taken for one of this server's.
func sealSecrets(ctx context.Context, st *store.Store, botID int64, f *flow.Flow) error {
	kr := st.Secrets()
	var prev *flow.Flow
	prevLoaded := false
	var verrs flow.ValidationErrors
	var failure error
	forEachSecret(f, func(n *flow.HTTPNode, name string, v *string) error {
		if *v != flow.RedactedSecret {
			enc, err := kr.Encrypt(*v)
			if err != nil {
				failure = fmt.Errorf("node %q: secret header %s: %w", n.ID, name, err)
				return failure
			}
			*v = enc
			return nil
		}
		if !prevLoaded {
			prevLoaded = true
			var err error
			if prev, err = current(ctx, st, botID, f.Key); err != nil {
				failure = err
				return err
			}
		}
		stored, ok := storedSecret(prev, n.ID, name)
		if !ok {
			verrs = append(verrs, flow.ValidationError{Node: n.ID, Field: "headers." + name,
				Msg: fmt.Sprintf("%q stands for a stored secret, but the flow's current version has no secret header %s in this node: give the value", flow.RedactedSecret, name)})
			return nil
		}
		// Kept values move to the current key as they are written again.
		enc, _, err := kr.Reencrypt(stored)
		if err != nil {
			failure = fmt.Errorf("node %q: secret header %s: the stored value: %w", n.ID, name, err)
			return failure
		}
		*v = enc
		return nil
	})
	if failure != nil {
		return failure
	}
	if len(verrs) > 0 {
		return verrs
	}
	return nil
}

// current returns the current version of the bot's flow with this key, nil if none.
func current(ctx context.Context, st *store.Store, botID int64, key string) (*flow.Flow, error) {
	rec, err := st.FlowByKey(ctx, botID, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := flow.Parse(rec.Document)
	if err != nil {
		return nil, fmt.Errorf("stored flow %s v%d: %w", rec.Key, rec.Version, err)
	}
	return f, nil
}

// storedSecret finds the stored value of a secret header (any case) of an http node.
func storedSecret(f *flow.Flow, nodeID, header string) (string, bool) {
	if f == nil {
		return "", false
	}
	node, ok := f.Node(nodeID)
	if !ok {
		return "", false
	}
	n, ok := node.(*flow.HTTPNode)
	if !ok || !n.IsSecretHeader(header) {
		return "", false
	}
	for k, v := range n.Headers {
		if strings.EqualFold(k, header) {
			return v, true
		}
	}
	return "", false
}

// Reencrypt rewrites every stored flow version whose secret headers are not all
// encrypted with the store keyring's first key, re-encrypting them with it, and returns
// how many versions it rewrote. The documents are otherwise unchanged.
func Reencrypt(ctx context.Context, st *store.Store) (int, error) {
	kr := st.Secrets()
	if !kr.Configured() {
		return 0, secret.ErrNoKey
	}
	const page = 100
	n := 0
	var afterFlow int64
	afterVersion := 0
	for {
		docs, err := st.FlowVersionsContaining(ctx, `"secret_headers"`, afterFlow, afterVersion, page)
		if err != nil {
			return n, err
		}
		for _, d := range docs {
			afterFlow, afterVersion = d.FlowID, d.Version
			f, err := flow.Parse(d.Document)
			if err != nil {
				return n, fmt.Errorf("stored flow %s v%d: %w", d.Key, d.Version, err)
			}
			changed := false
			var failure error
			forEachSecret(f, func(node *flow.HTTPNode, name string, v *string) error {
				out, c, err := kr.Reencrypt(*v)
				if err != nil {
					failure = fmt.Errorf("flow %s v%d, node %q, header %s: %w", d.Key, d.Version, node.ID, name, err)
					return failure
				}
				*v, changed = out, changed || c
				return nil
			})
			if failure != nil {
				return n, failure
			}
			if !changed {
				continue
			}
			doc, err := json.MarshalIndent(f, "", "  ")
			if err != nil {
				return n, fmt.Errorf("encode flow %s v%d: %w", d.Key, d.Version, err)
			}
			// Versions never change otherwise, so a mismatch means another rotation
			// rewrote this one meanwhile: it is done.
			ok, err := st.ReplaceFlowDocument(ctx, d.FlowID, d.Version, d.Document, doc)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		if len(docs) < page {
			return n, nil
		}
	}
}
