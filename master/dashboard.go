package master

import "net/http"

// dashboardRoutes adds the dashboard's routes (token required).
func (m *Master) dashboardRoutes(mux *http.ServeMux) {}
