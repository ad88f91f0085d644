package flow

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of a flow document, for editors and tooling.
// Parse is the authority: it accepts what the schema accepts, and also checks what a
// schema cannot express (references between nodes, reachability, loops, {{references}},
// URLs, regular expressions, JSON bodies). TestSchemaAgreesWithParse holds the two to the
// same verdict on every flow document in the repository and lists those extra rules.
//
//go:embed flow.schema.json
var Schema []byte
