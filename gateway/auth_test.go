package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Both schemes reach the same key: Bearer (the API reference) and Token
// (Contiguity's JS SDK), on both APIs.
func TestAuthorizationSchemes(t *testing.T) {
	h := newHarness(t, testYAML)
	id := h.mustCreate(`{"number": "+14155550123"}`)["id"].(string)
	cases := []struct {
		name, header string
		want         int
	}{
		{"bearer", "Bearer " + shopKey, 200},
		{"token", "Token " + shopKey, 200},
		{"scheme case-insensitive", "token " + shopKey, 200},
		{"extra spaces", "Token   " + shopKey + " ", 200},
		{"no scheme", shopKey, 401},
		{"other scheme", "Basic " + shopKey, 401},
		{"empty token", "Token ", 401},
		{"wrong key", "Token wrong-key-xxxxxxxxxxxx", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/verifications/" + id, "/otp/reverse/verify/" + id} {
				r := httptest.NewRequest("GET", path, nil)
				r.Header.Set("Authorization", tc.header)
				w := httptest.NewRecorder()
				h.h.ServeHTTP(w, r)
				if w.Code != tc.want {
					t.Fatalf("%s with %q = %d %s", path, tc.header, w.Code, w.Body)
				}
				if tc.want == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
					t.Fatalf("%s: 401 without WWW-Authenticate", path)
				}
			}
		})
	}
}

// GET /v1/verifications?number= lists only the caller's pending sessions:
// another key's session for the same sender stays invisible.
func TestListPendingOnlyOwn(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		own := h.mustCreate(`{"number": "+14155550123"}`)["id"].(string)
		if code, _ := h.create(otherKey, `{"number": "+14155550123"}`, nil); code != 201 {
			t.Fatal("other key's create")
		}
		for _, tc := range []struct {
			key, query, want string
			status           int
		}{
			{shopKey, "?number=%2B14155550123", `"data":[{"id":"` + own, 200},
			{shopKey, "?number=%2B14155550123&status=pending", `"data":[{"id":"` + own, 200},
			{shopKey, "?number=%2B14155550999", `"data":[]`, 200},
			{shopKey, "?number=%2B14155550123&status=verified", "invalid_status", 400},
			{shopKey, "", "invalid_number", 422},
		} {
			w := h.do("GET", "/v1/verifications"+tc.query, tc.key, nil, nil)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) || strings.Count(w.Body.String(), `"id"`) > 1 {
				t.Fatalf("%s = %d %s", tc.query, w.Code, w.Body)
			}
		}
	})
}
