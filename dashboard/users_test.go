package dashboard_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/streamtools/streamtools/dashboard"
)

func TestUsers(t *testing.T) {
	pool := testDB(t)
	ctx := t.Context()
	if _, err := dashboard.CreateUser(ctx, pool, "acme", "Ann@acme.example", pw); err != nil {
		t.Fatal(err)
	}
	mustUser(t, pool, "bravo", "bob@bravo.example", pw)

	for _, tc := range []struct {
		customer, login, password, want string
	}{
		{"acme", "ann@ACME.example", pw, "already exists"},
		{"", "x@acme.example", pw, "customer code"},
		{"a/b", "x@acme.example", pw, "customer code"},
		{"acme", "ab", pw, "3 to 254"},
		{"acme", "has space", pw, "without spaces"},
		{"acme", "x@acme.example", "short", "at least 12"},
		{"acme", "x@acme.example", strings.Repeat("p", 73), "at most 72"},
	} {
		_, err := dashboard.CreateUser(ctx, pool, tc.customer, tc.login, tc.password)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateUser(%q, %q): %v, want an error saying %q", tc.customer, tc.login, err, tc.want)
		}
	}
	if _, err := dashboard.CreateUser(ctx, pool, "acme", "ann@acme.example", pw); !errors.Is(err, dashboard.ErrUserExists) {
		t.Errorf("duplicate login: %v, want ErrUserExists", err)
	}

	users, err := dashboard.ListUsers(ctx, pool, "acme")
	if err != nil || len(users) != 1 || users[0].Login != "Ann@acme.example" || users[0].CustomerCode != "acme" {
		t.Errorf("ListUsers(acme) = %+v, %v", users, err)
	}
	if all, _ := dashboard.ListUsers(ctx, pool, ""); len(all) != 2 {
		t.Errorf("ListUsers() = %d users, want 2", len(all))
	}

	if _, err := dashboard.Authenticate(ctx, pool, "ann@acme.example", "wrong password!"); !errors.Is(err, dashboard.ErrBadPassword) {
		t.Errorf("wrong password: %v", err)
	}
	if err := dashboard.SetPassword(ctx, pool, "ann@acme.example", "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if u, err := dashboard.Authenticate(ctx, pool, "ANN@acme.example", "a brand new password"); err != nil || u.CustomerCode != "acme" {
		t.Errorf("after SetPassword: %+v, %v", u, err)
	}
	if err := dashboard.SetPassword(ctx, pool, "nobody@acme.example", pw); !errors.Is(err, dashboard.ErrNoSuchUser) {
		t.Errorf("SetPassword of nobody: %v", err)
	}
	if err := dashboard.DeleteUser(ctx, pool, "nobody@acme.example"); !errors.Is(err, dashboard.ErrNoSuchUser) {
		t.Errorf("DeleteUser of nobody: %v", err)
	}
	var hashes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM dashboard.users WHERE password_hash LIKE '$2a$%'`).Scan(&hashes); err != nil || hashes != 2 {
		t.Errorf("%d bcrypt hashes stored (%v), want 2", hashes, err)
	}
	if p := dashboard.GeneratePassword(); len(p) != 24 || p == dashboard.GeneratePassword() {
		t.Errorf("GeneratePassword() = %q", p)
	}
}

// The BI role must not read logins: they live outside the public schema.
func TestReaderRoleCannotReadLogins(t *testing.T) {
	pool := testDB(t)
	mustUser(t, pool, "acme", "ann@acme.example", pw)
	ctx := t.Context()
	var can bool
	err := pool.QueryRow(ctx, `SELECT has_schema_privilege('streamtools_reader', 'dashboard', 'USAGE')`).Scan(&can)
	if err != nil || can {
		t.Errorf("streamtools_reader has USAGE on schema dashboard (%v)", err)
	}
}
