package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

const secretFlow = `{"key": "crm", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "POST", "url": "https://crm.example.com/x",
   "headers": {"X-Token": "Bearer s3cr3t-abc", "X-Plain": "p"}, "secret_headers": ["x-token"], "next": "done"},
  {"id": "done", "type": "end"}]}`

func newBot(t *testing.T, st *store.Store, key string) int64 {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, key, "bot "+key)
	if err != nil {
		t.Fatal(err)
	}
	return b.ID
}

// storedHeader is the stored (encrypted) value of a header of the flow's http node.
func storedHeader(t *testing.T, st *store.Store, botID int64, key, node, header string) string {
	t.Helper()
	rec, err := st.FlowByKey(context.Background(), botID, key)
	if err != nil {
		t.Fatal(err)
	}
	f, err := flow.Parse(rec.Document)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := f.Node(node)
	return n.(*flow.HTTPNode).Headers[header]
}

func plain(t *testing.T, kr *secret.Keyring, v string) string {
	t.Helper()
	if !secret.IsEncrypted(v) {
		t.Fatalf("stored value %q is not encrypted", v)
	}
	p, err := kr.Decrypt(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretHeadersRoundTrip: secret header values are stored encrypted, exported
// redacted, and an export imported again (a flow builder's save) keeps them.
func TestSecretHeadersRoundTrip(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		kr := st.Secrets()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		if _, err := catalog.Import(ctx, st, bot, []byte(secretFlow)); err != nil {
			t.Fatal(err)
		}
		rec, _ := st.FlowByKey(ctx, bot, "crm")
		if strings.Contains(string(rec.Document), "s3cr3t") || !strings.Contains(string(rec.Document), `"X-Plain": "p"`) {
			t.Fatalf("stored document:\n%s", rec.Document)
		}
		if got := plain(t, kr, storedHeader(t, st, bot, "crm", "call", "X-Token")); got != "Bearer s3cr3t-abc" {
			t.Fatalf("stored X-Token opens to %q", got)
		}

		exp, err := catalog.Export(ctx, st, bot, "crm")
		if err != nil {
			t.Fatal(err)
		}
		doc := string(exp.Document)
		if strings.Contains(doc, "s3cr3t") || strings.Contains(doc, "enc:") || !strings.Contains(doc, `"X-Token": "[REDACTED]"`) ||
			!strings.Contains(doc, `"secret_headers": [`) || exp.Version != 1 {
			t.Fatalf("export:\n%s", doc)
		}

		// Imported again as exported: a new version with the same secret.
		rec2, err := catalog.Import(ctx, st, bot, exp.Document)
		if err != nil || rec2.Version != 2 {
			t.Fatalf("re-import of the export = %+v, %v", rec2, err)
		}
		if got := plain(t, kr, storedHeader(t, st, bot, "crm", "call", "X-Token")); got != "Bearer s3cr3t-abc" {
			t.Fatalf("after re-import X-Token opens to %q, want the kept secret", got)
		}
		// Edited elsewhere (the URL), the secret still kept; a new value replaces it.
		edited := strings.Replace(string(exp.Document), "https://crm.example.com/x", "https://crm.example.com/y", 1)
		if _, err := catalog.Import(ctx, st, bot, []byte(edited)); err != nil {
			t.Fatal(err)
		}
		if got := plain(t, kr, storedHeader(t, st, bot, "crm", "call", "X-Token")); got != "Bearer s3cr3t-abc" {
			t.Fatalf("after an edit X-Token opens to %q", got)
		}
		changed := strings.Replace(string(exp.Document), `"[REDACTED]"`, `"Bearer n3w"`, 1)
		if _, err := catalog.Import(ctx, st, bot, []byte(changed)); err != nil {
			t.Fatal(err)
		}
		if got := plain(t, kr, storedHeader(t, st, bot, "crm", "call", "X-Token")); got != "Bearer n3w" {
			t.Fatalf("after a new value X-Token opens to %q", got)
		}

		// The marker with nothing to keep is refused, naming the node and header.
		for name, doc := range map[string]string{
			"another bot": string(exp.Document),
			"another node": strings.Replace(strings.Replace(string(exp.Document), `"id": "call"`, `"id": "call2"`, 1),
				`"start": "call"`, `"start": "call2"`, 1),
			"a header that was not secret": strings.Replace(strings.Replace(string(exp.Document), `"X-Plain": "p"`, `"X-Plain": "[REDACTED]"`, 1),
				`"x-token"`, `"x-token", "X-Plain"`, 1),
		} {
			target := bot
			if name == "another bot" {
				target = newBot(t, st, "bbbbbbbbbbbbbbbb")
			}
			_, err := catalog.Import(ctx, st, target, []byte(doc))
			var verrs flow.ValidationErrors
			if !errors.As(err, &verrs) || !strings.Contains(err.Error(), "stands for a stored secret") {
				t.Fatalf("%s: import = %v, want a validation error about the marker", name, err)
			}
		}
		if rec, _ := st.FlowByKey(ctx, bot, "crm"); rec.Version != 4 {
			t.Fatalf("refused imports stored a version: now v%d", rec.Version)
		}
	})
}

// TestFlowSecretsRotation: Reencrypt moves every version's secrets to the first key, so
// the old key can be dropped; the documents are otherwise unchanged.
func TestFlowSecretsRotation(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := e.DSN(t)
			oldKey, newKey := secret.NewKey(), secret.NewKey()
			parse := func(s string) *secret.Keyring {
				kr, err := secret.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				return kr
			}
			stOld := storetest.OpenWithKeys(t, dsn, parse(oldKey))
			bot := newBot(t, stOld, "aaaaaaaaaaaaaaaa")
			for range 2 {
				if _, err := catalog.Import(ctx, stOld, bot, []byte(secretFlow)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := catalog.Import(ctx, stOld, bot, []byte(`{"key": "plain", "start": "e", "nodes": [{"id": "e", "type": "end"}]}`)); err != nil {
				t.Fatal(err)
			}
			before, _ := stOld.FlowByKey(ctx, bot, "crm")

			both := storetest.OpenWithKeys(t, dsn, parse(newKey+","+oldKey))
			n, err := catalog.Reencrypt(ctx, both)
			if err != nil || n != 2 {
				t.Fatalf("Reencrypt = %d, %v; want both versions of crm rewritten", n, err)
			}
			if n, err := catalog.Reencrypt(ctx, both); err != nil || n != 0 {
				t.Fatalf("a second Reencrypt = %d, %v", n, err)
			}
			stNew := storetest.OpenWithKeys(t, dsn, parse(newKey))
			v := storedHeader(t, stNew, bot, "crm", "call", "X-Token")
			if secret.KeyOf(v) != stNew.Secrets().PrimaryID() || plain(t, stNew.Secrets(), v) != "Bearer s3cr3t-abc" {
				t.Fatalf("after rotation X-Token is %q", v)
			}
			for version := 1; version <= 2; version++ {
				rec, err := stNew.FlowVersion(ctx, before.ID, version)
				if err != nil || strings.Contains(string(rec.Document), stOld.Secrets().PrimaryID()) {
					t.Fatalf("v%d still holds a value of the old key: %s", version, rec.Document)
				}
			}
			after, _ := stNew.FlowByKey(ctx, bot, "crm")
			if strip(after.Document) != strip(before.Document) {
				t.Fatalf("rotation changed the document beyond its secret:\n%s\n%s", before.Document, after.Document)
			}

			// Without a key, a flow with secret headers cannot be imported; others can.
			none := storetest.OpenWithKeys(t, dsn, nil)
			if _, err := catalog.Import(ctx, none, bot, []byte(secretFlow)); !errors.Is(err, secret.ErrNoKey) {
				t.Fatalf("import without a key = %v, want ErrNoKey", err)
			}
			if _, err := catalog.Import(ctx, none, bot, []byte(`{"key": "plain", "start": "e", "nodes": [{"id": "e", "type": "end"}]}`)); err != nil {
				t.Fatal(err)
			}
			if _, err := catalog.Reencrypt(ctx, none); !errors.Is(err, secret.ErrNoKey) {
				t.Fatalf("Reencrypt without a key = %v", err)
			}
		})
	}
}

// strip drops the ciphertext of each "enc:" value, leaving the rest of a document.
func strip(doc []byte) string {
	var b strings.Builder
	s := string(doc)
	for {
		i := strings.Index(s, `"enc:`)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i] + `"enc"`)
		s = s[i+1:]
		s = s[strings.Index(s, `"`)+1:]
	}
}
