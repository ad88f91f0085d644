package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// TestRewriteForRotation: the reads and compare-and-set writes that re-encryption uses.
func TestRewriteForRotation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, err := st.EnsureCustomer(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.CreateBot(ctx, c.ID, "aaaaaaaaaaaaaaaa", "a")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SaveChannelConfig(ctx, b.ID, "whatsapp", []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveChannelConfig(ctx, b.ID, "rcs", []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		all, err := st.AllChannelConfigs(ctx)
		if err != nil || len(all) != 2 || all[0].Channel != "rcs" || string(all[1].Config) != `{"v":1}` {
			t.Fatalf("AllChannelConfigs = %+v, %v", all, err)
		}
		if ok, err := st.ReplaceChannelConfig(ctx, b.ID, "whatsapp", []byte(`{"v":0}`), []byte(`{"v":9}`)); ok || err != nil {
			t.Fatalf("replace of changed settings = %v, %v; want false", ok, err)
		}
		if ok, err := st.ReplaceChannelConfig(ctx, b.ID, "whatsapp", []byte(`{"v":1}`), []byte(`{"v":3}`)); !ok || err != nil {
			t.Fatalf("replace = %v, %v", ok, err)
		}
		if got, _ := st.ChannelConfig(ctx, b.ID, "whatsapp"); string(got) != `{"v":3}` {
			t.Fatalf("after replace: %s", got)
		}

		// Documents holding the text, in order, a page at a time; LIKE's wildcards in the
		// text match only themselves.
		docs := map[string]string{"f1": `{"a_b": 1}`, "f2": `{"axb": 1}`, "f3": `{"a_b": 2, "100%": true}`}
		for _, k := range []string{"f1", "f2", "f3"} {
			for v := 1; v <= 2; v++ {
				if _, err := st.SaveFlow(ctx, b.ID, k, k, []byte(docs[k]), "test"); err != nil {
					t.Fatal(err)
				}
			}
		}
		var seen []string
		var afterFlow int64
		afterVersion := 0
		for range 10 {
			page, err := st.FlowVersionsContaining(ctx, `"a_b"`, afterFlow, afterVersion, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			d := page[0]
			seen = append(seen, fmt.Sprintf("%s v%d", d.Key, d.Version))
			afterFlow, afterVersion = d.FlowID, d.Version
		}
		if fmt.Sprint(seen) != "[f1 v1 f1 v2 f3 v1 f3 v2]" {
			t.Fatalf("versions containing \"a_b\": %v", seen)
		}
		if page, _ := st.FlowVersionsContaining(ctx, `100%`, 0, 0, 10); len(page) != 2 || page[0].Key != "f3" {
			t.Fatalf("versions containing 100%%: %+v", page)
		}
		f3, _ := st.FlowByKey(ctx, b.ID, "f3")
		if ok, err := st.ReplaceFlowDocument(ctx, f3.ID, 2, []byte(`{}`), []byte(`{"x":1}`)); ok || err != nil {
			t.Fatalf("replace of a changed version = %v, %v", ok, err)
		}
		if ok, err := st.ReplaceFlowDocument(ctx, f3.ID, 2, f3.Document, []byte(`{"x":1}`)); !ok || err != nil {
			t.Fatalf("replace = %v, %v", ok, err)
		}
		if got, _ := st.FlowVersion(ctx, f3.ID, 2); string(got.Document) != `{"x":1}` {
			t.Fatalf("after replace: %s", got.Document)
		}
		if got, _ := st.FlowVersion(ctx, f3.ID, 1); string(got.Document) != docs["f3"] {
			t.Fatalf("another version changed: %s", got.Document)
		}
	})
}
