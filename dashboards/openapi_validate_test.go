package dashboards

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// apiSpec is openapi.json loaded and validated once for the package's tests.
var apiSpec = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		return nil, fmt.Errorf("loading openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	return gorillamux.NewRouter(doc)
})

// validateAPIResponse checks one /api response against openapi.json: the
// operation exists, the status code is documented for it, and the body
// matches the documented schema of its content type.
func validateAPIResponse(req *http.Request, status int, header http.Header, body []byte) error {
	router, err := apiSpec()
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s: no operation in openapi.json: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		return fmt.Errorf("%s %s -> %d (operation %s) does not match openapi.json: %w\nbody: %.300s", req.Method, req.URL.RequestURI(), status,
			route.Operation.OperationID, err, body)
	}
	return nil
}

// openAPIValidated wraps the server of a test: every /api response it sends
// is checked against openapi.json, and a mismatch fails the test when it
// ends. The handler tests and the browser tests go through it, so the
// document cannot drift from what the server answers.
func openAPIValidated(t testing.TB, h http.Handler) http.Handler {
	var mu sync.Mutex
	var problems []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		_, _ = w.Write(body)
		err := validateAPIResponse(r, rec.Code, rec.Header(), body)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			problems = append(problems, err.Error())
		}
	})
}

// TestOpenAPIValidatorCatchesDrift: the validator the fixture uses rejects a
// body that breaks the schema and a status the operation does not document,
// and accepts the real answer.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/api/me", nil)
	h := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"wrong type", 200, `{"user": 5, "role": "admin", "csrf_token": "x"}`},
		{"undocumented status", 418, `{"error": "teapot"}`},
		{"not JSON", 200, `<html>`},
	} {
		if err := validateAPIResponse(req, tc.status, h, []byte(tc.body)); err == nil {
			t.Errorf("%s: %s accepted", tc.name, tc.body)
		}
	}
	if err := validateAPIResponse(httptest.NewRequest(http.MethodGet, "/api/nowhere", nil), 200, h, []byte(`{}`)); err == nil {
		t.Error("an undocumented path was accepted")
	}
}

// TestOpenAPIOperationIDs: every operation has a unique lowerCamelCase
// operationId (client generators name their methods by it).
func TestOpenAPIOperationIDs(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^[a-z][A-Za-z0-9]+$`)
	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			switch {
			case op.OperationID == "":
				t.Errorf("%s has no operationId", where)
			case !re.MatchString(op.OperationID):
				t.Errorf("%s: operationId %q is not lowerCamelCase", where, op.OperationID)
			case seen[op.OperationID] != "":
				t.Errorf("%s: operationId %q is also %s", where, op.OperationID, seen[op.OperationID])
			}
			seen[op.OperationID] = where
		}
	}
}
