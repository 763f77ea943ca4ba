"""The demo: `jobrun start --demo` runs these tasks on a throwaway store."""
