package gateway

import (
	"strings"
	"testing"
)

// TestCreateJSONNull: a null body is invalid JSON, a null number is an
// invalid number (capture mode is asked for by leaving number out), and
// null for any other optional field means the field was left out.
func TestCreateJSONNull(t *testing.T) {
	h := newHarness(t, testYAML)
	refused := []struct {
		name, body string
		status     int
		code       string
	}{
		{"null body", `null`, 400, "invalid_json"},
		{"null body with spaces", " \n null \t", 400, "invalid_json"},
		{"null number", `{"number": null}`, 422, "invalid_number"},
		{"null number with a capture hint", `{"number": null, "country": "US"}`, 422, "invalid_number"},
		{"empty number", `{"number": ""}`, 422, "invalid_number"},
		{"blank number", `{"number": "  ", "country": "US"}`, 422, "invalid_number"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			code, out := h.create(shopKey, tc.body, nil)
			if e, _ := out["error"].(map[string]any); code != tc.status || e["code"] != tc.code {
				t.Fatalf("%s = %d %v, want %d %s", tc.body, code, out, tc.status, tc.code)
			}
		})
	}
	if n := h.m.Len(); n != 0 {
		t.Fatalf("refused requests created %d sessions", n)
	}

	optional := []string{"code", "factor", "to", "country", "language", "ttl_seconds", "callback_url", "success_url", "redirect_url", "metadata"}
	for _, field := range optional {
		t.Run("null "+field, func(t *testing.T) {
			v := h.mustCreate(`{"number": "+14155550123", "` + field + `": null}`)
			if v["number"] != "+14155550123" || v["callback_url"] != nil || v["redirect_url"] != nil || v["language"] != "en" {
				t.Fatalf("null %s changed the answer: %v", field, v)
			}
			if m, ok := v["metadata"].(map[string]any); !ok || len(m) != 0 {
				t.Fatalf("null %s: metadata = %v, want {}", field, v["metadata"])
			}
			if code, _ := v["code"].(string); code == "" {
				t.Fatalf("null %s: no generated code: %v", field, v)
			}
		})
	}
	t.Run("capture mode without number", func(t *testing.T) {
		if v := h.mustCreate(`{"country": "US", "code": null}`); v["number"] != nil {
			t.Fatalf("capture mode = %v", v)
		}
	})
}

// TestInitiateJSONNull: the Contiguity route refuses a null body as
// invalid JSON (400, its envelope) and reads null optional fields as absent.
func TestInitiateJSONNull(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`null`), nil)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"object":"error"`) || !strings.Contains(w.Body.String(), "JSON object") {
			t.Fatalf("null body = %d %s", w.Code, w.Body)
		}
		w = h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number":"+14155550123","factor":null,"to":null,"service":null,"language":null,"success_url":null}`), nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"success_url":null`) {
			t.Fatalf("null optional fields = %d %s", w.Code, w.Body)
		}
	})
}

// TestWaitMalformedOnFinal: a malformed ?wait= is refused whatever the
// verification's status.
func TestWaitMalformedOnFinal(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		v := h.mustCreate(`{"number": "+14155550123"}`)
		id := v["id"].(string)
		if w := h.do("POST", "/v1/verifications/"+id+"/cancel", shopKey, nil, nil); w.Code != 200 {
			t.Fatalf("cancel = %d %s", w.Code, w.Body)
		}
		for _, wait := range []string{"forever", "-1s", "3m", "1e3"} {
			w := h.do("GET", "/v1/verifications/"+id+"?wait="+wait, shopKey, nil, nil)
			if w.Code != 400 || !strings.Contains(w.Body.String(), `"invalid_wait"`) {
				t.Errorf("wait=%s on a cancelled verification = %d %s, want 400 invalid_wait", wait, w.Code, w.Body)
			}
		}
		if w := h.do("GET", "/v1/verifications/"+id+"?wait=30s", shopKey, nil, nil); w.Code != 200 {
			t.Fatalf("a good wait on a final verification = %d %s", w.Code, w.Body)
		}
	})
}
