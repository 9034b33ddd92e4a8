package gateway

import (
	"strings"
	"testing"
)

// longURL returns an https URL of exactly n bytes.
func longURL(n int) string {
	const base = "https://app.example/"
	return base + strings.Repeat("a", n-len(base))
}

// metadataOf returns a JSON object of exactly n bytes.
func metadataOf(n int) string {
	return `{"x":"` + strings.Repeat("m", n-len(`{"x":""}`)) + `"}`
}

// TestCreateFieldLimits: every limited create field is accepted at its
// limit and refused one past it, on both APIs.
func TestCreateFieldLimits(t *testing.T) {
	h := newHarness(t, testYAML)
	sixteen, seventeen := strings.Repeat("é", 16), strings.Repeat("é", 17) // characters, not bytes
	native := []struct {
		field, at, past, code string
	}{
		{"callback_url", `"` + longURL(maxURLLen) + `"`, `"` + longURL(maxURLLen+1) + `"`, "invalid_url"},
		{"success_url", `"` + longURL(maxURLLen) + `"`, `"` + longURL(maxURLLen+1) + `"`, "invalid_url"},
		{"redirect_url", `"` + longURL(maxURLLen) + `"`, `"` + longURL(maxURLLen+1) + `"`, "invalid_url"},
		{"country", `"` + sixteen + `"`, `"` + seventeen + `"`, "invalid_country"},
		{"language", `"` + sixteen + `"`, `"` + seventeen + `"`, "invalid_language"},
		{"metadata", metadataOf(maxMetadataLen), metadataOf(maxMetadataLen + 1), "invalid_metadata"},
	}
	for _, tc := range native {
		t.Run("v1/"+tc.field, func(t *testing.T) {
			if code, out := h.create(shopKey, `{"number": "+14155550123", "`+tc.field+`": `+tc.at+`}`, nil); code != 201 {
				t.Fatalf("at the limit = %d %v", code, out["error"])
			}
			code, out := h.create(shopKey, `{"number": "+14155550123", "`+tc.field+`": `+tc.past+`}`, nil)
			if e, _ := out["error"].(map[string]any); code != 422 || e["code"] != tc.code {
				t.Fatalf("one past the limit = %d %v, want 422 %s", code, out, tc.code)
			}
		})
	}
	// Contiguity's fields; its documented status for invalid input is 400.
	contiguity := []struct{ field, at, past string }{
		{"success_url", longURL(maxURLLen), longURL(maxURLLen + 1)},
		{"language", sixteen, seventeen},
	}
	for _, tc := range contiguity {
		t.Run("contiguity/"+tc.field, func(t *testing.T) {
			w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550123", "`+tc.field+`": "`+tc.at+`"}`), nil)
			if w.Code != 200 {
				t.Fatalf("at the limit = %d %s", w.Code, w.Body)
			}
			w = h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550123", "`+tc.field+`": "`+tc.past+`"}`), nil)
			if w.Code != 400 || !strings.Contains(w.Body.String(), `"object":"error"`) || !strings.Contains(w.Body.String(), tc.field+" must be at most") {
				t.Fatalf("one past the limit = %d %s", w.Code, w.Body)
			}
		})
	}
}

// TestCreateURLPolicy: callback URLs are absolute https (http only with
// events.allow_private_destinations); redirect_url is https (http only in
// dev mode); any host.
func TestCreateURLPolicy(t *testing.T) {
	strict := newHarness(t, testYAML)
	private := newHarness(t, testYAML+"events: {allow_private_destinations: true}\n")
	dev := newHarness(t, testYAML)
	dev.s.cfg.Dev = true
	cases := []struct {
		name, field, url string
		strict, private  int // status without, with allow_private_destinations
		dev              int
	}{
		{"https callback", "callback_url", "https://app.example/cb", 201, 201, 201},
		{"https callback to an address", "callback_url", "https://10.0.0.1:8443/cb", 201, 201, 201},
		{"http callback", "callback_url", "http://127.0.0.1:8080/cb", 422, 201, 422},
		{"http success_url", "success_url", "http://app.example/cb", 422, 201, 422},
		{"relative callback", "callback_url", "/cb", 422, 422, 422},
		{"callback without host", "callback_url", "https:///cb", 422, 422, 422},
		{"ftp callback", "callback_url", "ftp://app.example/cb", 422, 422, 422},
		{"https redirect", "redirect_url", "https://shop.example/done", 201, 201, 201},
		{"http redirect", "redirect_url", "http://localhost:3000/done", 422, 422, 201},
		{"javascript redirect", "redirect_url", "javascript:alert(1)", 422, 422, 422},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"number": "+14155550123", "` + tc.field + `": "` + tc.url + `"}`
			for _, run := range []struct {
				name string
				h    *harness
				want int
			}{{"default", strict, tc.strict}, {"allow_private_destinations", private, tc.private}, {"dev", dev, tc.dev}} {
				code, out := run.h.create(shopKey, body, nil)
				if code != run.want {
					t.Errorf("%s: %d %v, want %d", run.name, code, out, run.want)
				}
				if e, _ := out["error"].(map[string]any); code == 422 && e["code"] != "invalid_url" {
					t.Errorf("%s: %v", run.name, out)
				}
			}
		})
	}
	// Contiguity's success_url follows the same policy.
	for _, run := range []struct {
		h    *harness
		want int
	}{{strict, 400}, {private, 200}} {
		w := run.h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550124", "success_url": "http://app.example/ok"}`), nil)
		if w.Code != run.want {
			t.Errorf("contiguity http success_url = %d %s, want %d", w.Code, w.Body, run.want)
		}
	}
}
