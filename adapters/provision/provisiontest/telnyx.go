package provisiontest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Telnyx fakes api.telnyx.com's REST v2 for one account: Bearer API key,
// GET /v2/phone_numbers/messaging with page[number] / page[size] and
// meta.total_pages, GET and PATCH /v2/messaging_profiles/{id}.
func Telnyx(apiKey string, numbers []Num, profiles ...App) *Fake {
	return newFake(apiKey, "", numbers, profiles, serveTelnyx)
}

func telnyxErr(w http.ResponseWriter, status int, code, title string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"code": code, "title": title, "detail": title + "."}}})
}

func serveTelnyx(f *Fake, w http.ResponseWriter, r *http.Request) {
	if f.Fail != 0 {
		telnyxErr(w, f.Fail, "10007", "Unexpected error")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.user {
		telnyxErr(w, 401, "10009", "Authentication failed")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v2/phone_numbers/messaging":
		q := r.URL.Query()
		size, _ := strconv.Atoi(q.Get("page[size]"))
		if size <= 0 || size > PageSize {
			size = PageSize
		}
		number, _ := strconv.Atoi(q.Get("page[number]"))
		if number < 1 {
			number = 1
		}
		recs, _ := f.page((number - 1) * size)
		out := []map[string]any{}
		for i, n := range recs {
			m := map[string]any{"record_type": "messaging_settings", "id": strconv.FormatInt(1293384261075731000+int64((number-1)*size+i), 10),
				"phone_number": n.Number, "messaging_profile_id": nil, "country_code": "US", "type": "longcode"}
			if n.App != "" {
				m["messaging_profile_id"] = n.App
			}
			out = append(out, m)
		}
		pages := (len(f.numbers) + size - 1) / size
		writeJSON(w, 200, map[string]any{"data": out, "meta": map[string]any{"total_pages": pages, "total_results": len(f.numbers), "page_number": number, "page_size": size}})
	case strings.HasPrefix(r.URL.Path, "/v2/messaging_profiles/"):
		a, ok := f.apps[strings.TrimPrefix(r.URL.Path, "/v2/messaging_profiles/")]
		if !ok {
			telnyxErr(w, 404, "10005", "Resource not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
		case http.MethodPatch:
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("Content-Type") != "application/json" {
				telnyxErr(w, 422, "10015", "Invalid JSON")
				return
			}
			params := map[string]string{}
			for k, v := range body {
				params[k], _ = v.(string)
			}
			f.record(r, params)
			if v, ok := body["webhook_url"].(string); ok {
				a.URL = v
			}
		default:
			telnyxErr(w, 405, "10006", "Method not allowed")
			return
		}
		writeJSON(w, 200, map[string]any{"data": map[string]any{"record_type": "messaging_profile", "id": a.ID, "name": a.Name,
			"webhook_url": a.URL, "webhook_failover_url": "", "webhook_api_version": "2", "enabled": true}})
	default:
		telnyxErr(w, 404, "10005", "Resource not found")
	}
}
