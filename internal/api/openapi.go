package api

import (
	_ "embed"
	"net/http"
)

// openAPI describes the whole HTTP API (OpenAPI 3.1). TestOpenAPIMatchesRoutes keeps it
// honest: every path and method it documents must be served.
//
//go:embed openapi.json
var openAPI []byte

func (s *Server) docRoutes() {
	s.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
}
