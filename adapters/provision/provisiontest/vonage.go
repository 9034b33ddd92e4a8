package provisiontest

import (
	"net/http"
	"strconv"
	"strings"
)

// Vonage fakes rest.nexmo.com's numbers API for one account: api_key and
// api_secret in the query string, GET /account/numbers with size and a
// 1-based index, POST /number/update with a form (country, msisdn,
// moHttpUrl).
func Vonage(apiKey, apiSecret string, numbers ...Num) *Fake {
	return newFake(apiKey, apiSecret, numbers, nil, serveVonage)
}

func serveVonage(f *Fake, w http.ResponseWriter, r *http.Request) {
	if f.Fail != 0 {
		w.WriteHeader(f.Fail) // Vonage's 5xx pages are not JSON
		_, _ = w.Write([]byte("<html>Internal Server Error</html>"))
		return
	}
	q := r.URL.Query()
	if q.Get("api_key") != f.user || q.Get("api_secret") != f.pass {
		writeJSON(w, 401, map[string]any{"type": "https://developer.nexmo.com/api-errors#unauthorized", "title": "Invalid credentials supplied", "detail": "You did not provide correct credentials.", "instance": "797a8f199c45014ab7b08bfe9cc1c12c"})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/account/numbers":
		size, _ := strconv.Atoi(q.Get("size"))
		if size <= 0 || size > PageSize {
			size = PageSize
		}
		index, _ := strconv.Atoi(q.Get("index"))
		if index < 1 {
			index = 1
		}
		recs, _ := f.page((index - 1) * size)
		out := []map[string]any{}
		for _, n := range recs {
			m := map[string]any{"country": vonageCountry(n.Number), "msisdn": strings.TrimPrefix(n.Number, "+"), "type": "mobile-lvn", "features": []string{"SMS", "VOICE"}}
			if n.URL != "" {
				m["moHttpUrl"] = n.URL
			}
			out = append(out, m)
		}
		writeJSON(w, 200, map[string]any{"count": len(f.numbers), "numbers": out})
	case r.Method == http.MethodPost && r.URL.Path == "/number/update":
		if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			writeJSON(w, 400, map[string]any{"error-code": "400", "error-code-label": "form body expected"})
			return
		}
		n := f.find(func(n *Num) bool { return strings.TrimPrefix(n.Number, "+") == r.PostForm.Get("msisdn") })
		if n == nil || r.PostForm.Get("country") != vonageCountry(n.Number) {
			writeJSON(w, 420, map[string]any{"error-code": "420", "error-code-label": "method failed"})
			return
		}
		params := map[string]string{}
		for k := range r.PostForm {
			params[k] = r.PostForm.Get(k)
		}
		f.record(r, params)
		if v, ok := r.PostForm["moHttpUrl"]; ok {
			n.URL = v[0]
		}
		writeJSON(w, 200, map[string]any{"error-code": "200", "error-code-label": "success"})
	default:
		writeJSON(w, 404, map[string]any{"error-code": "404", "error-code-label": "not found"})
	}
}

// vonageCountry is enough of a country lookup for the fakes' numbers.
func vonageCountry(e164 string) string {
	switch {
	case strings.HasPrefix(e164, "+44"):
		return "GB"
	case strings.HasPrefix(e164, "+33"):
		return "FR"
	}
	return "US"
}
