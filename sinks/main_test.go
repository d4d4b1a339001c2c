package sinks_test

import (
	"testing"

	"github.com/streamtools/streamtools/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
