package service

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/keyplane/keyplane"
)

// Bounds of a workspace's branding.
const (
	maxBrandName = 100
	maxLogoURL   = 2048
)

// UnmarshalJSON refuses fields a branding does not have: a misspelt field ("color") would otherwise
// be dropped, and the branding replaced whole without it.
func (b *BrandingInput) UnmarshalJSON(data []byte) error {
	type plain BrandingInput
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode((*plain)(b))
}

// checkBranding validates a branding, naming each bad field, and returns it as stored: the colour in
// lower case. The logo is https only: the portal is served over https inside the platform's pages,
// and a logo over http would be mixed content, or a way to watch who opens the portal.
func checkBranding(v *keyplane.Validation, in BrandingInput) keyplane.Branding {
	var b keyplane.Branding
	if in.Name.Set && !in.Name.Null {
		b.Name = checkName(v, "branding.name", in.Name.Value, maxBrandName, true)
	}
	if c := in.AccentColor; c.Set && !c.Null {
		if !keyplane.ValidAccentColor(c.Value) {
			v.Add("branding.accentColor", "must be a colour written #rrggbb")
		}
		b.AccentColor = strings.ToLower(c.Value)
	}
	if l := in.LogoURL; l.Set && !l.Null {
		u, err := url.Parse(l.Value)
		if err != nil || len(l.Value) > maxLogoURL || u.Scheme != "https" || u.Host == "" || u.User != nil || strings.ContainsAny(l.Value, " \"'<>\\") {
			v.Add("branding.logoUrl", "must be an https URL of at most %d characters, without credentials", maxLogoURL)
		}
		b.LogoURL = l.Value
	}
	return b
}
