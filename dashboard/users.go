package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/bcrypt"
)

// DB is what the dashboard needs of Postgres: a *pgxpool.Pool or a *pgx.Conn.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Errors of the credential functions.
var (
	ErrUserExists  = errors.New("dashboard: login already exists")
	ErrNoSuchUser  = errors.New("dashboard: no such login")
	ErrBadPassword = errors.New("dashboard: wrong login or password")
)

// MinPasswordLen is the shortest password UserCreate and SetPassword
// accept. Generated passwords are longer (GeneratePassword).
const MinPasswordLen = 12

// bcryptCost is the work factor of password hashes: about 50 ms a check
// on the machines measured, slow enough against offline guessing, fast
// enough for a login form.
const bcryptCost = 11

// User is a dashboard login. It sees the data of CustomerCode only.
type User struct {
	ID           int64      `json:"id"`
	CustomerCode string     `json:"customer_code"`
	Login        string     `json:"login"`
	CreatedAt    time.Time  `json:"created_at"`
	LastLoginAt  *time.Time `json:"last_login_at,omitempty"`
}

// ValidateLogin checks a login name, naming the fix.
func ValidateLogin(login string) error {
	if n := utf8.RuneCountInString(login); n < 3 || n > 254 {
		return fmt.Errorf("dashboard: login %q: use 3 to 254 characters (an e-mail address works)", login)
	}
	if !utf8.ValidString(login) || strings.IndexFunc(login, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("dashboard: login %q: use valid UTF-8 without spaces or control characters", login)
	}
	return nil
}

// ValidateCustomer checks a customer code as the tenant registry does.
func ValidateCustomer(code string) error {
	if code == "" || strings.ContainsAny(code, "/ ") {
		return fmt.Errorf("dashboard: customer code %q: use a non-empty code without spaces or slashes", code)
	}
	return nil
}

func validatePassword(pw string) error {
	if len(pw) < MinPasswordLen {
		return fmt.Errorf("dashboard: password: use at least %d characters (or let the command generate one)", MinPasswordLen)
	}
	if len(pw) > 72 { // bcrypt ignores what follows byte 72
		return fmt.Errorf("dashboard: password: use at most 72 bytes")
	}
	return nil
}

// GeneratePassword returns a random password of 24 characters (about 139
// bits) without look-alike characters.
func GeneratePassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// CreateUser adds a login for customer. It returns ErrUserExists when the
// login (compared case-insensitively) exists for any customer.
func CreateUser(ctx context.Context, db DB, customer, login, password string) (User, error) {
	if err := ValidateCustomer(customer); err != nil {
		return User{}, err
	}
	if err := ValidateLogin(login); err != nil {
		return User{}, err
	}
	if err := validatePassword(password); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("dashboard: hashing password: %w", err)
	}
	u := User{CustomerCode: customer, Login: login}
	err = db.QueryRow(ctx, `INSERT INTO dashboard.users (customer_code, login, password_hash) VALUES ($1, $2, $3)
		RETURNING id, created_at`, customer, login, string(hash)).Scan(&u.ID, &u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, fmt.Errorf("%w: %s", ErrUserExists, login)
	}
	if err != nil {
		return User{}, fmt.Errorf("dashboard: creating login: %w", err)
	}
	return u, nil
}

// SetPassword replaces the password of login and ends its sessions.
func SetPassword(ctx context.Context, db DB, login, password string) error {
	if err := validatePassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return fmt.Errorf("dashboard: hashing password: %w", err)
	}
	var id int64
	err = db.QueryRow(ctx, `UPDATE dashboard.users SET password_hash = $2, password_changed_at = now()
		WHERE lower(login) = lower($1) RETURNING id`, login, string(hash)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, login)
	}
	if err != nil {
		return fmt.Errorf("dashboard: setting password: %w", err)
	}
	if _, err := db.Exec(ctx, `DELETE FROM dashboard.sessions WHERE user_id = $1`, id); err != nil {
		return fmt.Errorf("dashboard: ending sessions: %w", err)
	}
	return nil
}

// DeleteUser removes login; its sessions end with it.
func DeleteUser(ctx context.Context, db DB, login string) error {
	tag, err := db.Exec(ctx, `DELETE FROM dashboard.users WHERE lower(login) = lower($1)`, login)
	if err != nil {
		return fmt.Errorf("dashboard: deleting login: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, login)
	}
	return nil
}

// ListUsers returns the logins of customer, or of every customer when
// customer is empty, ordered by customer and login.
func ListUsers(ctx context.Context, db DB, customer string) ([]User, error) {
	rows, err := db.Query(ctx, `SELECT id, customer_code, login, created_at, last_login_at FROM dashboard.users
		WHERE $1 = '' OR customer_code = $1 ORDER BY customer_code, lower(login)`, customer)
	if err != nil {
		return nil, fmt.Errorf("dashboard: listing logins: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		err := r.Scan(&u.ID, &u.CustomerCode, &u.Login, &u.CreatedAt, &u.LastLoginAt)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: listing logins: %w", err)
	}
	return users, nil
}

// dummyHash is checked against when the login does not exist, so that an
// unknown login takes as long as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password, only a timing equaliser"), bcryptCost)

// Authenticate checks login and password and returns the user, or
// ErrBadPassword for an unknown login and a wrong password alike.
func Authenticate(ctx context.Context, db DB, login, password string) (User, error) {
	var u User
	var hash string
	err := db.QueryRow(ctx, `SELECT id, customer_code, login, password_hash FROM dashboard.users WHERE lower(login) = lower($1)`,
		login).Scan(&u.ID, &u.CustomerCode, &u.Login, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return User{}, ErrBadPassword
	}
	if err != nil {
		return User{}, fmt.Errorf("dashboard: reading login: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrBadPassword
	}
	return u, nil
}

// session is a logged-in browser: the customer whose data it may read
// comes from here and from nowhere else.
type session struct {
	UserID   int64
	Customer string
	Login    string
	CSRF     string
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// createSession stores a new session for u and returns the cookie token.
func createSession(ctx context.Context, db DB, u User, ttl time.Duration) (string, session, error) {
	token := randomToken()
	s := session{UserID: u.ID, Customer: u.CustomerCode, Login: u.Login, CSRF: randomToken()}
	// Expired sessions are swept here rather than by a timer: logins are
	// rare and the delete is indexed.
	if _, err := db.Exec(ctx, `DELETE FROM dashboard.sessions WHERE expires_at < now()`); err != nil {
		return "", session{}, fmt.Errorf("dashboard: sweeping sessions: %w", err)
	}
	_, err := db.Exec(ctx, `INSERT INTO dashboard.sessions (token_hash, user_id, csrf_token, expires_at)
		VALUES ($1, $2, $3, now() + $4::interval)`, tokenHash(token), u.ID, s.CSRF, ttl)
	if err != nil {
		return "", session{}, fmt.Errorf("dashboard: creating session: %w", err)
	}
	if _, err := db.Exec(ctx, `UPDATE dashboard.users SET last_login_at = now() WHERE id = $1`, u.ID); err != nil {
		return "", session{}, fmt.Errorf("dashboard: recording login: %w", err)
	}
	return token, s, nil
}

// lookupSession returns the live session of a cookie token.
func lookupSession(ctx context.Context, db DB, token string) (session, bool, error) {
	var s session
	err := db.QueryRow(ctx, `SELECT u.id, u.customer_code, u.login, s.csrf_token
		FROM dashboard.sessions s JOIN dashboard.users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > now()`, tokenHash(token)).Scan(&s.UserID, &s.Customer, &s.Login, &s.CSRF)
	if errors.Is(err, pgx.ErrNoRows) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, fmt.Errorf("dashboard: reading session: %w", err)
	}
	return s, true, nil
}

func deleteSession(ctx context.Context, db DB, token string) error {
	if _, err := db.Exec(ctx, `DELETE FROM dashboard.sessions WHERE token_hash = $1`, tokenHash(token)); err != nil {
		return fmt.Errorf("dashboard: ending session: %w", err)
	}
	return nil
}
