package api

// openAPIDocument is replaced by the full document in the next commit.
func openAPIDocument() []byte { return []byte(`{"openapi":"3.1.0"}`) }
