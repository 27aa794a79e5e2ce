package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

const (
	userColumns = `id, email, password_hash, operator, created_at, updated_at`

	sqlGetUser        = `SELECT ` + userColumns + ` FROM users WHERE id = ?`
	sqlGetUserByEmail = `SELECT ` + userColumns + ` FROM users WHERE email = ?`
	sqlInsertUser     = `INSERT INTO users (` + userColumns + `) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlUserEmailTaken  = `SELECT COUNT(*) FROM users WHERE email = ? AND id <> ?`
	sqlUpdateUser      = `UPDATE users SET email = ?, password_hash = ?, updated_at = ? WHERE id = ?`
	sqlSetUserOperator = `UPDATE users SET operator = ?, updated_at = ? WHERE id = ?`
)

func scanUser(s scanner) (*keyplane.User, error) {
	var u keyplane.User
	var created, updated int64
	if err := s.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Operator, &created, &updated); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &u, nil
}

func (q *queries) GetUser(ctx context.Context, id string) (*keyplane.User, error) {
	return get(ctx, q, "get user", sqlGetUser, scanUser, id)
}

func (q *queries) GetUserByEmail(ctx context.Context, email string) (*keyplane.User, error) {
	return get(ctx, q, "get user by email", sqlGetUserByEmail, scanUser, strings.ToLower(email))
}

func (t *tx) CreateUser(ctx context.Context, u *keyplane.User) error {
	return t.insert(ctx, "create user", sqlInsertUser, u.ID, strings.ToLower(u.Email), u.PasswordHash,
		u.Operator, micros(u.CreatedAt), micros(u.UpdatedAt))
}

func (t *tx) UpdateUser(ctx context.Context, u *keyplane.User) error {
	const op = "update user"
	email := strings.ToLower(u.Email)
	if err := t.taken(ctx, op, sqlUserEmailTaken, email, u.ID); err != nil {
		return err
	}
	return t.update(ctx, op, sqlUpdateUser, email, u.PasswordHash, micros(u.UpdatedAt), u.ID)
}

func (t *tx) SetUserOperator(ctx context.Context, userID string, operator bool, at time.Time) error {
	return t.update(ctx, "set user operator", sqlSetUserOperator, operator, micros(at), userID)
}
