package provisiontest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Twilio fakes api.twilio.com's IncomingPhoneNumbers (2010-04-01) for one
// account: HTTP Basic account SID / auth token, PageSize / Page / PageToken
// paging with next_page_uri, form-encoded updates of SmsUrl, SmsMethod,
// SmsApplicationSid, VoiceUrl, VoiceMethod and VoiceApplicationSid.
func Twilio(accountSID, authToken string, numbers ...Num) *Fake {
	return newFake(accountSID, authToken, numbers, nil, serveTwilio)
}

func twilioNumber(i int, n *Num) map[string]any {
	m := map[string]any{
		"sid": twilioSID(i), "account_sid": "", "phone_number": n.Number, "friendly_name": n.Number,
		"sms_url": n.URL, "sms_method": n.Method, "sms_application_sid": nil, "api_version": "2010-04-01",
	}
	if n.App != "" {
		m["sms_application_sid"] = n.App
	}
	m["voice_url"], m["voice_method"], m["voice_application_sid"], m["trunk_sid"] = n.VoiceURL, n.VoiceMethod, nilIfEmpty(n.VoiceApp), nilIfEmpty(n.Trunk)
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func twilioSID(i int) string { return fmt.Sprintf("PN%032d", i) }

func serveTwilio(f *Fake, w http.ResponseWriter, r *http.Request) {
	if f.Fail != 0 {
		writeJSON(w, f.Fail, map[string]any{"code": 20500, "message": "Internal Server Error", "more_info": "https://www.twilio.com/docs/errors/20500", "status": f.Fail})
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.user || pass != f.pass {
		writeJSON(w, 401, map[string]any{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
		return
	}
	base := "/2010-04-01/Accounts/" + f.user + "/IncomingPhoneNumbers"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == base+".json":
		q := r.URL.Query()
		size, _ := strconv.Atoi(q.Get("PageSize"))
		if size <= 0 || size > PageSize {
			size = PageSize
		}
		pageNo, _ := strconv.Atoi(q.Get("Page"))
		if pageNo > 0 && q.Get("PageToken") != fmt.Sprintf("PT%d", pageNo) {
			writeJSON(w, 400, map[string]any{"code": 20001, "message": "bad PageToken", "status": 400})
			return
		}
		start := pageNo * PageSize
		recs, more := f.page(start)
		out := []map[string]any{}
		for i, n := range recs {
			out = append(out, twilioNumber(start+i, n))
		}
		var next any
		if more {
			next = fmt.Sprintf("%s.json?PageSize=%d&Page=%d&PageToken=PT%d", base, size, pageNo+1, pageNo+1)
		}
		writeJSON(w, 200, map[string]any{
			"incoming_phone_numbers": out, "next_page_uri": next, "page": pageNo, "page_size": size,
			"first_page_uri": base + ".json?PageSize=" + strconv.Itoa(size) + "&Page=0", "previous_page_uri": nil,
			"start": start, "end": start + len(out) - 1, "uri": r.URL.RequestURI(),
		})
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, base+"/") && strings.HasSuffix(r.URL.Path, ".json"):
		sid := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, base+"/"), ".json")
		if err := r.ParseForm(); err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			writeJSON(w, 400, map[string]any{"code": 20001, "message": "form body expected", "status": 400})
			return
		}
		for i, n := range f.numbers {
			if twilioSID(i) != sid {
				continue
			}
			params := map[string]string{}
			for k := range r.PostForm {
				params[k] = r.PostForm.Get(k)
			}
			f.record(r, params)
			if v, ok := r.PostForm["SmsUrl"]; ok {
				n.URL = v[0]
			}
			if v, ok := r.PostForm["SmsMethod"]; ok {
				n.Method = v[0]
			}
			if v, ok := r.PostForm["SmsApplicationSid"]; ok {
				n.App = v[0]
			}
			if v, ok := r.PostForm["VoiceUrl"]; ok {
				n.VoiceURL = v[0]
			}
			if v, ok := r.PostForm["VoiceMethod"]; ok {
				n.VoiceMethod = v[0]
			}
			if v, ok := r.PostForm["VoiceApplicationSid"]; ok {
				n.VoiceApp = v[0]
			}
			writeJSON(w, 200, twilioNumber(i, n))
			return
		}
		writeJSON(w, 404, map[string]any{"code": 20404, "message": "The requested resource was not found", "status": 404})
	default:
		writeJSON(w, 404, map[string]any{"code": 20404, "message": "The requested resource " + r.URL.Path + " was not found", "status": 404})
	}
}
