// Package openapi holds the OpenAPI (Swagger 2.0) description of the JSON/HTTP API,
// generated from the google.api.http annotations of proto/imapcopy/v1 by
// protoc-gen-openapiv2 (`make generate`). The api serves it at /v1/openapi.json.
package openapi

import _ "embed"

// JSON is the description.
//
//go:embed spec/imapcopy.swagger.json
var JSON []byte
