package sqlstore

import (
	"context"

	"github.com/keyplane/keyplane"
)

// The master key rotation's reads and writes: every sealed value, in a stable order, in pages.
const (
	sqlSealedSecrets = `SELECT ` + secretColumns + ` FROM secrets s
		WHERE s.ciphertext IS NOT NULL AND s.hash > ? ORDER BY s.hash LIMIT ?`
	sqlSetSecretCiphertext = `UPDATE secrets SET ciphertext = ? WHERE hash = ? AND ciphertext IS NOT NULL`
	sqlAllWebhooks         = `SELECT ` + webhookColumns + ` FROM webhook_endpoints WHERE id > ? ORDER BY id LIMIT ?`
)

func (q *queries) SealedSecrets(ctx context.Context, after []byte, limit int) ([]keyplane.Secret, error) {
	if after == nil {
		after = []byte{}
	}
	return list(ctx, q, "sealed secrets", sqlSealedSecrets, scanSecret, after, limit)
}

func (q *queries) AllWebhooks(ctx context.Context, after string, limit int) ([]keyplane.WebhookEndpoint, error) {
	return list(ctx, q, "all webhooks", sqlAllWebhooks, values(scanWebhook), after, limit)
}

func (t *tx) SetSecretCiphertext(ctx context.Context, hash, ciphertext []byte) error {
	return t.update(ctx, "set secret ciphertext", sqlSetSecretCiphertext, ciphertext, hash)
}
