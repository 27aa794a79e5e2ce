package dashboard

// Routes is the dashboard's route table: every pattern, as registered, in order. The security tests
// (isolation_test.go) are generated from it.
func Routes() []string {
	d, err := New(Options{})
	if err != nil {
		panic(err)
	}
	return d.mux.Patterns()
}
