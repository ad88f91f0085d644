package flow

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of a flow document. Parse is the authority
// (it also checks references between nodes); the schema is for editors and tooling.
//
//go:embed flow.schema.json
var Schema []byte
