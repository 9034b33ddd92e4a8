// Package provisiontest runs fake Twilio, Vonage, Plivo and Telnyx REST
// APIs on httptest servers for tests of `mogate numbers`. Each fake speaks
// the paths, authentication, JSON and paging the official SDKs (twilio-go
// rest/api/v2010, vonage-go-sdk numbers, plivo-go) and Telnyx's REST v2
// send and expect, serves at most PageSize records a page (real APIs cap
// page sizes too, so paging is always exercised), and records every write
// call so tests can assert exactly which were made.
package provisiontest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
)

// PageSize is the most records a fake serves per page.
const PageSize = 2

// Num is a number of a fake account.
type Num struct {
	Number string // E.164
	URL    string // Twilio sms_url, Vonage moHttpUrl
	Method string // Twilio sms_method
	App    string // Twilio sms_application_sid, Plivo application id, Telnyx messaging profile id
	// Twilio voice_url, voice_method, voice_application_sid and trunk_sid.
	VoiceURL, VoiceMethod, VoiceApp, Trunk string
}

// App is a Plivo application or a Telnyx messaging profile.
type App struct {
	ID, Name, URL, Method string
}

// Fake is one provider's fake API.
type Fake struct {
	*httptest.Server
	// Fail, when set, answers every request with this status (and a body
	// the provider would send).
	Fail int
	// Echo, when set, answers every request with this status and an error
	// body that repeats the request (its Authorization header, URL and
	// body) in every text field of the providers' error bodies, as a
	// careless API or proxy might.
	Echo int

	mu      sync.Mutex
	user    string // account SID, API key, auth id or Bearer key
	pass    string
	numbers []*Num
	apps    map[string]*App
	writes  []string
	pages   int
	nextApp int
}

// Pages returns how many pages of the number list the fake has served.
func (f *Fake) Pages() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pages
}

// Len returns how many numbers the account has.
func (f *Fake) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.numbers)
}

// Writes returns "METHOD path key=value..." for every write call so far.
func (f *Fake) Writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

// Number returns the fake's record of number (nil when absent).
func (f *Fake) Number(number string) *Num {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.numbers {
		if n.Number == number {
			c := *n
			return &c
		}
	}
	return nil
}

// App returns the fake's record of an application / messaging profile.
func (f *Fake) App(id string) *App {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.apps[id]; ok {
		c := *a
		return &c
	}
	return nil
}

// AppsNamed returns how many applications / profiles have name.
func (f *Fake) AppsNamed(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.apps {
		if a.Name == name {
			n++
		}
	}
	return n
}

func newFake(user, pass string, numbers []Num, apps []App, h func(f *Fake, w http.ResponseWriter, r *http.Request)) *Fake {
	f := &Fake{user: user, pass: pass, apps: map[string]*App{}, nextApp: 900}
	for i := range numbers {
		n := numbers[i]
		f.numbers = append(f.numbers, &n)
	}
	for i := range apps {
		a := apps[i]
		f.apps[a.ID] = &a
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.Echo != 0 {
			echo(w, r, f.Echo)
			return
		}
		h(f, w, r)
	}))
	return f
}

// record notes a write call with its sorted parameters.
func (f *Fake) record(r *http.Request, params map[string]string) {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{r.Method, r.URL.Path}
	for _, k := range keys {
		parts = append(parts, k+"="+params[k])
	}
	f.writes = append(f.writes, strings.Join(parts, " "))
}

func (f *Fake) find(match func(*Num) bool) *Num {
	for _, n := range f.numbers {
		if match(n) {
			return n
		}
	}
	return nil
}

// page returns the records of a 0-based page and whether more follow.
func (f *Fake) page(start int) ([]*Num, bool) {
	f.pages++
	return page(f.numbers, start)
}

func page[T any](all []T, start int) ([]T, bool) {
	if start > len(all) {
		start = len(all)
	}
	end := min(start+PageSize, len(all))
	return all[start:end], end < len(all)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *Fake) newID(prefix string) string {
	f.nextApp++
	return fmt.Sprintf("%s%d", prefix, f.nextApp)
}

// echo answers status with the request repeated in the text fields of
// Twilio's, Vonage's, Plivo's and Telnyx's error bodies at once; the
// numeric codes stay numeric (Twilio's code, Telnyx's errors[].code).
func echo(w http.ResponseWriter, r *http.Request, status int) {
	b, _ := io.ReadAll(r.Body)
	req := fmt.Sprintf("%s %s Authorization: %s body: %s", r.Method, r.URL.String(), r.Header.Get("Authorization"), b)
	writeJSON(w, status, map[string]any{
		"code": 20003, "message": req, "more_info": req, "status": status, // Twilio
		"type": req, "title": req, "detail": req, "instance": req, "error-code": req, "error-code-label": req, // Vonage
		"api_id": req, "error": req, // Plivo
		"errors": []map[string]any{{"code": "10009", "title": req, "detail": req, "source": map[string]any{"pointer": req}}}, // Telnyx
	})
}
