package api

import "net/http"

func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, c *call) error {
	writeData(w, http.StatusOK, s.svc.Catalog().Permissions())
	return nil
}

func (s *Server) listEventTypes(w http.ResponseWriter, r *http.Request, c *call) error {
	writeData(w, http.StatusOK, s.svc.Catalog().EventTypes())
	return nil
}
