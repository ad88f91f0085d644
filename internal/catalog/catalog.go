// Package catalog stores a bot's flow documents: import (validate, key, version) and
// export. The CLI, the admin API and the demo all import through it.
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/internal/flow"
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
	// Store the normalised document, so an export is a clean, importable file.
	norm, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return store.FlowRecord{}, fmt.Errorf("encode flow: %w", err)
	}
	return st.SaveFlow(ctx, botID, f.Key, f.Name, norm, publishedBy)
}
