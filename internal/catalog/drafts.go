package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// Drafts keep the flow builder's document as it was sent, valid or not, except for the
// values of secret headers: those are sealed as a published version's are before the
// draft is stored, and shown as flow.RedactedSecret when it is read. The functions here
// read documents leniently, so they serve stored flow versions as well.

// draftSecrets calls fn with each secret header value of the http nodes of a draft
// document, read leniently since a draft need not be valid (members that are not what
// they should be are passed over), and returns the document with the values fn set.
// changed is false, and out is doc, when fn changed none.
func draftSecrets(doc []byte, fn func(nodeID, header string, value *string) error) (out []byte, changed bool, err error) {
	var top map[string]json.RawMessage
	var nodes []json.RawMessage
	if json.Unmarshal(doc, &top) != nil || json.Unmarshal(top["nodes"], &nodes) != nil {
		return doc, false, nil
	}
	for i, raw := range nodes {
		var node map[string]json.RawMessage
		var head struct {
			ID            string   `json:"id"`
			Type          string   `json:"type"`
			SecretHeaders []string `json:"secret_headers"`
		}
		var headers map[string]json.RawMessage
		if json.Unmarshal(raw, &node) != nil || json.Unmarshal(raw, &head) != nil || head.Type != flow.TypeHTTP ||
			len(head.SecretHeaders) == 0 || json.Unmarshal(node["headers"], &headers) != nil {
			continue
		}
		nodeChanged := false
		for name, rawValue := range headers {
			var v string
			if !isSecret(head.SecretHeaders, name) || json.Unmarshal(rawValue, &v) != nil {
				continue
			}
			was := v
			if err := fn(head.ID, name, &v); err != nil {
				return nil, false, err
			}
			if v != was {
				headers[name], _ = json.Marshal(v)
				nodeChanged = true
			}
		}
		if !nodeChanged {
			continue
		}
		if node["headers"], err = json.Marshal(headers); err != nil {
			return nil, false, fmt.Errorf("draft node %q: %w", head.ID, err)
		}
		if nodes[i], err = json.Marshal(node); err != nil {
			return nil, false, fmt.Errorf("draft node %q: %w", head.ID, err)
		}
		changed = true
	}
	if !changed {
		return doc, false, nil
	}
	if top["nodes"], err = json.Marshal(nodes); err != nil {
		return nil, false, fmt.Errorf("draft: %w", err)
	}
	if out, err = json.Marshal(top); err != nil {
		return nil, false, fmt.Errorf("draft: %w", err)
	}
	return out, true, nil
}

func isSecret(names []string, header string) bool {
	for _, n := range names {
		if strings.EqualFold(n, header) {
			return true
		}
	}
	return false
}

// draftValue is a secret header's place in a draft: node id and header name (any case).
type draftValue struct{ node, header string }

func draftValueOf(node, header string) draftValue { return draftValue{node, strings.ToLower(header)} }

// SealDraft encrypts the secret header values of a draft about to be stored. A value
// left as flow.RedactedSecret, as a read draft shows it, takes the value the previous
// draft prev (nil for none) had for that header of that node, if it had one; otherwise it
// stays the marker, which publishing resolves to the published value.
func SealDraft(kr *secret.Keyring, doc, prev []byte) ([]byte, error) {
	kept := draftSecretValues(prev)
	out, _, err := draftSecrets(doc, func(node, header string, v *string) error {
		switch {
		case *v == flow.RedactedSecret:
			if old, ok := kept[draftValueOf(node, header)]; ok {
				*v = old
				return nil
			}
			return nil
		case *v == "":
			return nil
		}
		enc, err := kr.Encrypt(*v)
		if err != nil {
			return fmt.Errorf("node %q: secret header %s: %w", node, header, err)
		}
		*v = enc
		return nil
	})
	return out, err
}

// RedactSecrets shows a stored document (a draft, or a flow version as stored) with its
// secret header values as flow.RedactedSecret.
func RedactSecrets(doc []byte) []byte {
	out, _, err := draftSecrets(doc, func(_, _ string, v *string) error {
		if *v != "" {
			*v = flow.RedactedSecret
		}
		return nil
	})
	if err != nil { // fn fails nothing; only encoding could, and then nothing is shown
		return []byte("{}")
	}
	return out
}

// OpenSecrets returns a stored document (a draft, or a flow version as stored) with its
// secret header values decrypted, to be imported again: kept in memory only, and sealed
// anew by the import.
func OpenSecrets(kr *secret.Keyring, doc []byte) ([]byte, error) {
	out, _, err := draftSecrets(doc, func(node, header string, v *string) error {
		if *v == flow.RedactedSecret {
			return nil
		}
		plain, err := kr.Decrypt(*v)
		if err != nil {
			return fmt.Errorf("node %q: secret header %s: %w", node, header, err)
		}
		*v = plain
		return nil
	})
	return out, err
}

// draftSecretValues returns a stored draft's secret header values, each sealed (or, in
// a draft stored before drafts were sealed, in plain), by node and header; markers and
// empty values are left out.
func draftSecretValues(doc []byte) map[draftValue]string {
	out := map[draftValue]string{}
	if doc == nil {
		return out
	}
	_, _, _ = draftSecrets(doc, func(node, header string, v *string) error {
		if *v != flow.RedactedSecret && *v != "" {
			out[draftValueOf(node, header)] = *v
		}
		return nil
	})
	return out
}

// DraftNodeSecrets returns a lookup of the stored values of the secret headers (any case)
// of one node of a stored draft (nil for none), reading the draft once.
func DraftNodeSecrets(doc []byte, node string) func(header string) (string, bool) {
	values := draftSecretValues(doc)
	return func(header string) (string, bool) {
		v, ok := values[draftValueOf(node, header)]
		return v, ok
	}
}

// ReencryptDrafts rewrites every stored draft whose secret header values are not all
// sealed with the store keyring's first key (a draft saved in plain before drafts were
// sealed included), and returns how many it rewrote.
func ReencryptDrafts(ctx context.Context, st *store.Store) (int, error) {
	kr := st.Secrets()
	if !kr.Configured() {
		return 0, secret.ErrNoKey
	}
	const page = 100
	n := 0
	var afterBot int64
	afterKey := ""
	for {
		drafts, err := st.FlowDraftsContaining(ctx, `"secret_headers"`, afterBot, afterKey, page)
		if err != nil {
			return n, err
		}
		for _, d := range drafts {
			afterBot, afterKey = d.BotID, d.Key
			doc, changed, err := draftSecrets(d.Document, func(node, header string, v *string) error {
				if *v == flow.RedactedSecret {
					return nil
				}
				out, _, err := kr.Reencrypt(*v)
				if err != nil {
					return fmt.Errorf("draft of flow %s, node %q, header %s: %w", d.Key, node, header, err)
				}
				*v = out
				return nil
			})
			if err != nil {
				return n, err
			}
			if !changed {
				continue
			}
			// A mismatch means the draft was saved again meanwhile, sealed as it was.
			ok, err := st.ReplaceDraftDocument(ctx, d.BotID, d.Key, d.Document, doc)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		if len(drafts) < page {
			return n, nil
		}
	}
}
