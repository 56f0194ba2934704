# Read ingest outputs from R.
#
# The outputs are encrypted with keys only the `ingest` command holds, so R asks
# it for the decrypted table: `ingest cat PATH --format arrow` writes an Arrow
# IPC stream to a pipe, read here into memory. Nothing is written to disk.
# Needs the `arrow` package (install.packages("arrow")) and `ingest` on the PATH
# (or its path in INGEST_BIN). Keys come from INGEST_HOME, as for the CLI.
#
#   source("r/ingest.R")
#   cases <- read_delivery("out/3877b7acf94124a1")
#   small <- read_delivery("out/", columns = c("sex", "hospitalized"))
#   ds    <- read_export("/encrypted/volume/export")   # after `ingest export --plaintext`

#' Read the decrypted table of a delivery (or of every delivery under a root).
#'
#' Runs `ingest cat PATH --format arrow [--columns a,b]` and reads its standard
#' output as an Arrow IPC stream, in memory: the plaintext never reaches disk.
#' Categorical columns arrive as factors, dates as Date, booleans as logical.
#'
#' @param path An output folder of `ingest run`, or one delivery inside it.
#' @param columns Optional character vector of columns to read (default: all).
#' @param ingest The ingest command (default: `INGEST_BIN`, else `ingest`).
#' @param as_data_frame `TRUE` (default) for a tibble, `FALSE` for an Arrow Table.
#' @return A data frame (tibble) or an Arrow Table.
read_delivery <- function(path, columns = NULL,
                          ingest = Sys.getenv("INGEST_BIN", "ingest"),
                          as_data_frame = TRUE) {
  .ingest_need_arrow()
  stream <- .ingest_cat(path, columns, ingest)
  arrow::read_ipc_stream(stream, as_data_frame = as_data_frame)
}

#' Open a plaintext export (`ingest export --plaintext DIR --out DEST`).
#'
#' The files are plain Parquet, one per delivery; `arrow::open_dataset` reads
#' them lazily as one table (use dplyr verbs, then `dplyr::collect()`).
#'
#' @param dir The `--out` folder of `ingest export`.
#' @return An Arrow Dataset.
read_export <- function(dir) {
  .ingest_need_arrow()
  if (!dir.exists(dir)) stop("read_export: no folder ", dir, call. = FALSE)
  arrow::open_dataset(dir, format = "parquet")
}

# Stop with what to do when arrow is missing (the stream cannot be parsed without it).
.ingest_need_arrow <- function() {
  if (!requireNamespace("arrow", quietly = TRUE)) {
    stop("the R package 'arrow' is needed to read ingest outputs: ",
         "install it with install.packages(\"arrow\") and try again", call. = FALSE)
  }
  invisible(TRUE)
}

# Run `ingest cat` and return its standard output as one raw vector. A pipe in
# binary mode ("rb") read in chunks with readBin: system2(stdout = TRUE) would
# split the bytes into lines of text and corrupt the stream.
.ingest_cat <- function(path, columns = NULL,
                        ingest = Sys.getenv("INGEST_BIN", "ingest")) {
  args <- c("cat", shQuote(path), "--format", "arrow")
  if (length(columns)) {
    args <- c(args, "--columns", shQuote(paste(columns, collapse = ",")))
  }
  cmd <- paste0(.ingest_ld_prefix(), paste(c(shQuote(ingest), args), collapse = " "))
  con <- pipe(cmd, open = "rb")
  chunks <- list()
  repeat {
    chunk <- readBin(con, what = "raw", n = 4194304L)
    if (length(chunk) == 0L) break
    chunks[[length(chunks) + 1L]] <- chunk
  }
  status <- close(con)  # the raw wait status: exit code * 256 on Unix
  # ingest prints its own (value-free) message on standard error
  if (!is.null(status) && status != 0L) {
    code <- if (status >= 256L) status %/% 256L else status
    stop("'", ingest, " cat' failed (exit status ", code, "); see its message above",
         call. = FALSE)
  }
  if (length(chunks) == 0L) {
    stop("'", ingest, " cat' wrote nothing; is INGEST_BIN the ingest command?",
         call. = FALSE)
  }
  do.call(c, chunks)
}

# R's start-up script puts its own library folders, and the system's, first in
# LD_LIBRARY_PATH. A child Python built as a shared library (pyenv, a local
# build) then loads the system's libpython instead of its own and fails. Give
# the child LD_LIBRARY_PATH without those folders: R's lib is no business of
# ingest's, and the system folders are searched by default anyway (after the
# program's own, as they should be).
.ingest_ld_prefix <- function() {
  if (Sys.info()[["sysname"]] != "Linux") return("")
  parts <- strsplit(Sys.getenv("LD_LIBRARY_PATH"), ":", fixed = TRUE)[[1]]
  system_dir <- "^/(usr/)?lib(32|64)?(/[^/]*-linux-gnu[^/]*)?/?$"
  keep <- parts[nzchar(parts) & !grepl(system_dir, parts) &
                normalizePath(parts, mustWork = FALSE) !=
                  normalizePath(file.path(R.home(), "lib"), mustWork = FALSE)]
  if (length(keep)) {
    paste0("LD_LIBRARY_PATH=", shQuote(paste(keep, collapse = ":")), " ")
  } else {
    "unset LD_LIBRARY_PATH; "
  }
}
