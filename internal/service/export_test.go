package service

import "context"

// WrapPasswordCheck puts f around the service's password check, so that a test sees every password
// actually checked (and can hold a check to make attempts overlap).
func WrapPasswordCheck(s *Service, f func(pw string, check func() (bool, error)) (bool, error)) {
	inner := s.checkPassword
	s.checkPassword = func(ctx context.Context, phc, pw string) (bool, error) {
		return f(pw, func() (bool, error) { return inner(ctx, phc, pw) })
	}
}
