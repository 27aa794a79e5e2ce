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
	rows, err := q.query(ctx, sqlSealedSecrets, after, limit)
	if err != nil {
		return nil, q.fail("sealed secrets", err)
	}
	out, err := collect(rows, scanSecret)
	if err != nil {
		return nil, q.fail("sealed secrets", err)
	}
	return out, nil
}

func (q *queries) AllWebhooks(ctx context.Context, after string, limit int) ([]keyplane.WebhookEndpoint, error) {
	rows, err := q.query(ctx, sqlAllWebhooks, after, limit)
	if err != nil {
		return nil, q.fail("all webhooks", err)
	}
	out, err := collect(rows, func(s scanner) (keyplane.WebhookEndpoint, error) {
		e, err := scanWebhook(s)
		if err != nil {
			return keyplane.WebhookEndpoint{}, err
		}
		return *e, nil
	})
	if err != nil {
		return nil, q.fail("all webhooks", err)
	}
	return out, nil
}

func (t *tx) SetSecretCiphertext(ctx context.Context, hash, ciphertext []byte) error {
	return t.update(ctx, "set secret ciphertext", sqlSetSecretCiphertext, ciphertext, hash)
}
