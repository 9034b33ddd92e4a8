package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIForGenerators holds the document to what client generators
// need: a server, an operationId on every operation, a type beside every
// enum and const, request and response bodies that are named components,
// one XML media type per answer, webhooks without security, and the null
// rules of the create bodies.
func TestOpenAPIForGenerators(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if servers, _ := doc["servers"].([]any); len(servers) == 0 {
		t.Error("no servers")
	}
	paths, webhooks := doc["paths"].(map[string]any), doc["webhooks"].(map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)

	ids := map[string]string{}
	eachOp := func(section map[string]any, f func(where string, op map[string]any)) {
		for path, item := range section {
			for method, op := range item.(map[string]any) {
				if op, ok := op.(map[string]any); ok && slices.Contains([]string{"get", "post", "put", "patch", "delete"}, method) {
					f(method+" "+path, op)
				}
			}
		}
	}
	checkID := func(where string, op map[string]any) {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", where)
		} else if other, dup := ids[id]; dup {
			t.Errorf("operationId %s on %s and %s", id, where, other)
		}
		ids[id] = where
	}
	eachOp(paths, checkID)
	eachOp(paths, func(where string, op map[string]any) {
		if _, ok := op["security"].([]any); !ok {
			t.Errorf("%s: no security: say [] where no API key is needed", where)
		}
	})
	eachOp(webhooks, checkID)
	eachOp(webhooks, func(where string, op map[string]any) {
		if sec, ok := op["security"].([]any); !ok || len(sec) != 0 {
			t.Errorf("webhook %s: security must be [] (mogate signs events; the app holds no API key for them)", where)
		}
	})

	walkJSON(doc, "#", func(ptr string, m map[string]any) {
		_, hasEnum := m["enum"]
		_, hasConst := m["const"]
		if _, typed := m["type"]; (hasEnum || hasConst) && !typed {
			t.Errorf("%s: enum or const without type", ptr)
		}
	})

	// Bodies in paths are named components (or plain strings, e.g. PNG,
	// HTML, event streams), and so are objects nested in components.
	eachOp(paths, func(where string, op map[string]any) {
		walkJSON(op, where, func(ptr string, m map[string]any) {
			if _, ok := m["properties"]; ok {
				t.Errorf("%s: inline object schema; name it in components/schemas", ptr)
			}
		})
		if rs, ok := op["responses"].(map[string]any); ok {
			for status, r := range rs {
				xml := 0
				for ct := range r.(map[string]any)["content"].(map[string]any) {
					if strings.Contains(ct, "xml") {
						xml++
					}
				}
				if xml > 1 {
					t.Errorf("%s %s: %d XML media types (generators name them alike)", where, status, xml)
				}
			}
		}
	})
	for name, s := range schemas {
		for key, sub := range s.(map[string]any) {
			walkJSON(sub, "#/components/schemas/"+name+"/"+key, func(ptr string, m map[string]any) {
				if _, ok := m["properties"]; ok {
					t.Errorf("%s: inline object schema; name it in components/schemas", ptr)
				}
			})
		}
	}

	// A generator that prunes unused components walks paths only (so does
	// oapi-codegen v2.8.2): what a webhook refers to must be reachable from
	// the paths too.
	fromPaths, fromWebhooks := refsFrom(paths, schemas), refsFrom(webhooks, schemas)
	for ref := range fromWebhooks {
		if !fromPaths[ref] {
			t.Errorf("webhooks refer to %s, which no path reaches: generators prune it", ref)
		}
	}

	// Null: an optional create field may be null (the same as leaving it
	// out), except number, for which null is an error.
	for _, name := range []string{"CreateRequest", "InitiateRequest"} {
		s := schemas[name].(map[string]any)
		required, _ := s["required"].([]any)
		for field, p := range s["properties"].(map[string]any) {
			types, _ := p.(map[string]any)["type"].([]any)
			nullable := slices.Contains(types, any("null"))
			if want := field != "number" && !slices.Contains(required, any(field)); nullable != want {
				t.Errorf("%s.%s: nullable %v, want %v", name, field, nullable, want)
			}
		}
	}
}

// TestOpenAPIErrorCodes: the ErrorCode enum lists exactly the codes the
// gateway's sources answer with.
func TestOpenAPIErrorCodes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorCode struct{ Enum []string }
			}
		}
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	re := regexp.MustCompile(`(?:errorf\(http\.Status\w+, |code: )"([a-z_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			used[string(m[1])] = true
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d codes in the sources: is the pattern still right?", len(used))
	}
	for code := range used {
		if !slices.Contains(doc.Components.Schemas.ErrorCode.Enum, code) {
			t.Errorf("code %s is answered but not in ErrorCode", code)
		}
	}
	for _, code := range doc.Components.Schemas.ErrorCode.Enum {
		if !used[code] {
			t.Errorf("ErrorCode lists %s, which no source answers", code)
		}
	}
}

// walkJSON calls f on every object in v, depth first, with a JSON-pointer
// like path.
func walkJSON(v any, ptr string, f func(ptr string, m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		f(ptr, x)
		for k, sub := range x {
			walkJSON(sub, ptr+"/"+k, f)
		}
	case []any:
		for _, sub := range x {
			walkJSON(sub, ptr+"/[]", f)
		}
	}
}

// refsFrom returns the component references reachable from v, following
// schema references transitively.
func refsFrom(v any, schemas map[string]any) map[string]bool {
	seen := map[string]bool{}
	var visit func(any)
	visit = func(v any) {
		walkJSON(v, "", func(_ string, m map[string]any) {
			ref, _ := m["$ref"].(string)
			if ref == "" || seen[ref] {
				return
			}
			seen[ref] = true
			if name, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok {
				visit(schemas[name])
			}
		})
	}
	visit(v)
	return seen
}
