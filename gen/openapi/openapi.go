// Package openapi embeds the OpenAPI (Swagger 2) document that buf generates from proto/,
// so every service can serve it at /openapi.json.
package openapi

import _ "embed"

// JSON is the merged OpenAPI document of every Latchkey REST call.
//
//go:embed latchkey.swagger.json
var JSON []byte
