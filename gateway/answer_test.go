package gateway

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestAnswerIsData: a webhook's answer is what c.Data writes, status,
// headers and body, whatever the status (none allowed for 204) and
// whether a Content-Type was set before, the first time and once the
// header value is the shared one.
func TestAnswerIsData(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, tc := range []struct {
		status int
		ct     string
		body   []byte
		preset string
	}{
		{http.StatusOK, "text/xml", []byte(`<Response/>`), ""},
		{http.StatusOK, "text/plain; charset=utf-8", nil, ""},
		{http.StatusNoContent, "application/json", []byte(`{}`), ""},
		{http.StatusBadRequest, "application/json", []byte(`{"a":1}`), "text/html"},
	} {
		run := func(write func(*gin.Context)) *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			if tc.preset != "" {
				c.Header("Content-Type", tc.preset)
			}
			write(c)
			return w
		}
		want := run(func(c *gin.Context) { c.Data(tc.status, tc.ct, tc.body) })
		for range 2 { // the second time, the header value is the shared one
			got := run(func(c *gin.Context) { answer(c, tc.status, tc.ct, tc.body) })
			if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || got.Body.String() != want.Body.String() {
				t.Fatalf("%d %s: answer wrote %d %v %q, c.Data %d %v %q", tc.status, tc.ct,
					got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		}
	}
}
