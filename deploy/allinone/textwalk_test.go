package allinone

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// badText are values no Latchkey string may hold, as they travel in a URL (escaped) and
// in a JSON body: invalid UTF-8 (a lone byte, a truncated sequence, a surrogate) and NUL.
var badText = []struct{ name, url, json string }{
	{"byte ff", "%ff", "\"\xff\""},
	{"truncated sequence", "a%c3", "\"a\xc3\""},
	{"surrogate", "%ed%a0%80", "\"\xed\xa0\x80\""},
	{"NUL", "key_%00", `"key_\u0000"`},
}

// openAPI is the part of the served OpenAPI (Swagger 2) document the walk needs.
type openAPI struct {
	Paths map[string]map[string]struct {
		Parameters []struct {
			Name   string     `json:"name"`
			In     string     `json:"in"`
			Schema *apiSchema `json:"schema"`
		} `json:"parameters"`
	} `json:"paths"`
	Definitions map[string]*apiSchema `json:"definitions"`
}

type apiSchema struct {
	Ref        string                `json:"$ref"`
	Type       string                `json:"type"`
	Properties map[string]*apiSchema `json:"properties"`
	Items      *apiSchema            `json:"items"`
	// AdditionalProperties is a schema (a map's values) or a bool.
	AdditionalProperties json.RawMessage `json:"additionalProperties"`
}

// mapValues is the schema of a map's values, nil when s is not a map.
func (s *apiSchema) mapValues() *apiSchema {
	var v apiSchema
	if len(s.AdditionalProperties) == 0 || json.Unmarshal(s.AdditionalProperties, &v) != nil {
		return nil
	}
	return &v
}

func (d *openAPI) resolve(s *apiSchema) *apiSchema {
	for s != nil && s.Ref != "" {
		s = d.Definitions[strings.TrimPrefix(s.Ref, "#/definitions/")]
	}
	return s
}

// bodies returns, for each string in a body of schema s (a property, a list element, a map
// key or value, at any depth), a JSON body that puts bad there, named by its path.
func (d *openAPI) bodies(s *apiSchema, bad string, depth int) map[string]string {
	s = d.resolve(s)
	out := map[string]string{}
	if s == nil || depth > 3 {
		return out
	}
	switch {
	case s.Type == "string":
		out[""] = bad
	case s.Type == "array":
		for p, b := range d.bodies(s.Items, bad, depth+1) {
			out["[0]"+p] = "[" + b + "]"
		}
	case s.mapValues() != nil:
		out["{key}"] = "{" + bad + `:"v"}`
		for p, b := range d.bodies(s.mapValues(), bad, depth+1) {
			out["{value}"+p] = `{"k":` + b + "}"
		}
	default:
		for name, prop := range s.Properties {
			for p, b := range d.bodies(prop, bad, depth+1) {
				out["."+name+p] = `{"` + name + `":` + b + "}"
			}
		}
	}
	return out
}

// TestEveryRouteRefusesBadText walks every REST route of the served OpenAPI document and
// puts each kind of bad text in each position it has (every path variable, every query
// parameter, every string of its body, nested ones included), with no credentials: each
// answer is 400 invalid_argument in the envelope with X-Request-Id, never a 5xx. The
// strings never reach a handler or Postgres (pkg/server's text check refuses them first).
func TestEveryRouteRefusesBadText(t *testing.T) {
	s := startSuite(t)
	var doc openAPI
	r := s.Must(200, s.Call("GET", "/openapi.json", "", nil))
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &doc))

	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tried, routes := 0, 0
	for _, tmpl := range paths {
		for method, op := range doc.Paths[tmpl] {
			method = strings.ToUpper(method)
			routes++
			// A well-formed stand-in for each path variable, so only one position is bad.
			base := tmpl
			for _, p := range op.Parameters {
				if p.In == "path" {
					base = strings.Replace(base, "{"+p.Name+"}", "x", 1)
				}
			}
			try := func(what, path, body string) {
				t.Helper()
				tried++
				t.Run(method+" "+tmpl+" "+what, func(t *testing.T) {
					var b any
					if body != "" {
						b = body
					}
					s.Call(method, path, "", b).RequireError(t, 400, "invalid_argument")
				})
			}
			for _, bad := range badText {
				for _, p := range op.Parameters {
					switch p.In {
					case "path":
						try("path "+p.Name+" "+bad.name, strings.Replace(tmpl, "{"+p.Name+"}", bad.url, 1), "")
					case "query":
						try("query "+p.Name+" "+bad.name, base+"?"+url.QueryEscape(p.Name)+"="+bad.url, "")
					case "body":
						for where, body := range doc.bodies(p.Schema, bad.json, 0) {
							try("body"+where+" "+bad.name, base, body)
						}
					}
				}
			}
		}
	}
	// The walk cannot pass by finding nothing: every management route is in the document.
	require.GreaterOrEqual(t, routes, 20, "routes in /openapi.json")
	require.GreaterOrEqual(t, tried, 200, "positions tried")
}
