package provisiontest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Plivo fakes api.plivo.com's v1 Number and Application resources for one
// account: HTTP Basic auth id / auth token, limit / offset paging with
// meta.next, JSON bodies on writes (as plivo-go sends them), numbers as
// digits and their application as a resource URI.
func Plivo(authID, authToken string, numbers []Num, apps ...App) *Fake {
	return newFake(authID, authToken, numbers, apps, servePlivo)
}

func servePlivo(f *Fake, w http.ResponseWriter, r *http.Request) {
	if f.Fail != 0 {
		w.WriteHeader(f.Fail) // Plivo's 5xx answers may have no body
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.user || pass != f.pass {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(401)
		_, _ = w.Write([]byte("Could not verify your access level for that URL.\nYou have to login with proper credentials"))
		return
	}
	base := "/v1/Account/" + f.user + "/"
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	if !ok {
		writeJSON(w, 404, map[string]any{"api_id": "x", "error": "not found"})
		return
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	var body map[string]any
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("Content-Type") != "application/json" {
			writeJSON(w, 400, map[string]any{"api_id": "x", "error": "JSON body expected"})
			return
		}
	}
	params := map[string]string{}
	for k, v := range body {
		params[k] = fmt.Sprint(v)
	}
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "Number":
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > PageSize {
			limit = PageSize
		}
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		recs, more := f.page(offset)
		out := []map[string]any{}
		for _, n := range recs {
			m := map[string]any{"number": strings.TrimPrefix(n.Number, "+"), "alias": nil, "country": "UNITED STATES", "sms_enabled": true,
				"resource_uri": base + "Number/" + strings.TrimPrefix(n.Number, "+") + "/", "application": nil}
			if n.App != "" {
				m["application"] = base + "Application/" + n.App + "/"
			}
			out = append(out, m)
		}
		var next any
		if more {
			next = fmt.Sprintf("%sNumber/?limit=%d&offset=%d", base, limit, offset+len(recs))
		}
		writeJSON(w, 200, map[string]any{"api_id": "list-1", "meta": map[string]any{"limit": limit, "offset": offset, "next": next, "previous": nil, "total_count": len(f.numbers)}, "objects": out})
	case r.Method == http.MethodPost && len(parts) == 2 && parts[0] == "Number":
		n := f.find(func(n *Num) bool { return strings.TrimPrefix(n.Number, "+") == parts[1] })
		if n == nil {
			writeJSON(w, 404, map[string]any{"api_id": "x", "error": "not found"})
			return
		}
		f.record(r, params)
		if id, ok := body["app_id"].(string); ok {
			n.App = id
		}
		writeJSON(w, 202, map[string]any{"api_id": "upd-1", "message": "changed"})
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "Application":
		name := r.URL.Query().Get("app_name")
		out := []map[string]any{}
		for _, a := range f.apps {
			if name == "" || a.Name == name {
				out = append(out, plivoApp(a))
			}
		}
		writeJSON(w, 200, map[string]any{"api_id": "apps-1", "meta": map[string]any{"limit": 20, "offset": 0, "next": nil, "previous": nil, "total_count": len(out)}, "objects": out})
	case r.Method == http.MethodPost && len(parts) == 1 && parts[0] == "Application":
		f.record(r, params)
		a := &App{ID: f.newID(""), Name: params["app_name"], URL: params["message_url"], Method: params["message_method"]}
		f.apps[a.ID] = a
		writeJSON(w, 201, map[string]any{"api_id": "new-1", "app_id": a.ID, "message": "created"})
	case len(parts) == 2 && parts[0] == "Application":
		a, ok := f.apps[parts[1]]
		if !ok {
			w.WriteHeader(404)
			_, _ = w.Write([]byte("{}"))
			return
		}
		if r.Method == http.MethodGet {
			writeJSON(w, 200, plivoApp(a))
			return
		}
		f.record(r, params)
		if v, ok := body["message_url"].(string); ok {
			a.URL = v
		}
		if v, ok := body["message_method"].(string); ok {
			a.Method = v
		}
		writeJSON(w, 202, map[string]any{"api_id": "upd-2", "message": "changed"})
	default:
		writeJSON(w, 404, map[string]any{"api_id": "x", "error": "not found"})
	}
}

func plivoApp(a *App) map[string]any {
	return map[string]any{"app_id": a.ID, "app_name": a.Name, "message_url": a.URL, "message_method": a.Method,
		"answer_url": "", "default_app": false, "resource_uri": "/v1/Account/x/Application/" + a.ID + "/"}
}
