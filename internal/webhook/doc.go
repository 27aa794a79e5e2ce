// Package webhook holds the pieces of webhook delivery that must be right for security: secrets and
// Standard Webhooks signatures (https://www.standardwebhooks.com), validation of endpoint URLs, and an
// HTTP client that refuses to reach private networks even when DNS changes its answer between the
// check and the connection.
//
// The URL check (URLPolicy.CheckURL, URLPolicy.CheckHost) gives users a readable reason when they
// save an endpoint; the Client repeats the address check at dial time, because that is the only check
// that sees the address actually connected to.
package webhook
