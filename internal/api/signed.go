package api

import (
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/verify"
)

// verifyOptions reads what every verification may add: permissions and the client's address.
func verifyOptions(v *keyplane.Validation, perms []string, ip string) keyplane.VerifyRequest {
	// Signatures and JWTs spend the default cost: their bodies name none.
	vr := keyplane.VerifyRequest{Permissions: perms, Cost: keyplane.DefaultCreditCost}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			v.Add("ip", "must be an IPv4 or IPv6 address")
		}
		vr.IP = a.Unmap()
	}
	if len(perms) > keyplane.MaxPermissions {
		v.Add("permissions", "at most %d permissions", keyplane.MaxPermissions)
	}
	return vr
}

type signatureRequest struct {
	KeyID       string   `json:"keyId"`
	Timestamp   *int64   `json:"timestamp"`
	Signature   string   `json:"signature"`
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	BodySHA256  string   `json:"bodySha256"`
	Permissions []string `json:"permissions"`
	IP          string   `json:"ip"`
}

func (s *Server) verifySignature(w http.ResponseWriter, r *http.Request, c *call) error {
	var req signatureRequest
	if err := decode(w, r, &req, maxVerifyBody, false); err != nil {
		return err
	}
	var v keyplane.Validation
	if req.KeyID == "" {
		v.Add("keyId", "is required")
	}
	if req.Timestamp == nil {
		v.Add("timestamp", "is required: unix seconds")
	}
	if req.Signature == "" {
		v.Add("signature", "is required: hex of the HMAC-SHA256")
	}
	if !verify.ValidMethod(req.Method) {
		v.Add("method", "is required: an HTTP method in capitals, such as POST")
	}
	if !verify.ValidPath(req.Path) {
		v.Add("path", "must start with /, be at most %d bytes and hold no control characters", verify.MaxSignedPath)
	}
	if b, err := hex.DecodeString(req.BodySHA256); err != nil || len(b) != 32 || strings.ToLower(req.BodySHA256) != req.BodySHA256 {
		v.Add("bodySha256", "must be the body's SHA-256 in lowercase hex (64 characters); of an empty body, e3b0c442…b855")
	}
	vr := verifyOptions(&v, req.Permissions, req.IP)
	if err := v.Err(); err != nil {
		return err
	}
	res, err := s.ver.VerifySignature(r.Context(), &verify.SignedRequest{
		KeyID: req.KeyID, Timestamp: *req.Timestamp, Signature: req.Signature, Method: req.Method, Path: req.Path,
		BodySHA256: req.BodySHA256, Req: vr,
	})
	if err != nil {
		return err
	}
	writeVerified(w, s.verified(r, c, res, keyplane.SourceSignature, &vr))
	return nil
}

type jwtRequest struct {
	Token       string   `json:"token"`
	Permissions []string `json:"permissions"`
	IP          string   `json:"ip"`
}

// maxToken bounds a JWT's length.
const maxToken = 16 << 10

func (s *Server) verifyJWT(w http.ResponseWriter, r *http.Request, c *call) error {
	var req jwtRequest
	if err := decode(w, r, &req, maxVerifyBody, false); err != nil {
		return err
	}
	var v keyplane.Validation
	if req.Token == "" || len(req.Token) > maxToken {
		v.Add("token", "is required: a compact JWT of at most %d bytes", maxToken)
	}
	vr := verifyOptions(&v, req.Permissions, req.IP)
	if err := v.Err(); err != nil {
		return err
	}
	res, err := s.ver.VerifyJWT(r.Context(), req.Token, &vr)
	if err != nil {
		return err
	}
	writeVerified(w, s.verified(r, c, res, keyplane.SourceJWT, &vr))
	return nil
}
