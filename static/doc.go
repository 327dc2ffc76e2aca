// Package static will hold the embedded player pages.
package static
