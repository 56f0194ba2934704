# Samples written by R's haven (ReadStat's writers, driven from R: a second writer
# beside pyreadstat) for tests/test_readers_stats.py. Run from this folder:
#   Rscript make-samples.R
# The table is small and made here; its truth is in tests/test_readers_stats.py.
library(haven)
cases <- data.frame(
  CASE_ID = c("0000000001", "0000000002", "0000000003", "0000000004"),
  SEX = labelled(c(1, 2, 9, 3), c(F = 1, M = 2, X = 3)),
  DOB = as.Date(c("1950-01-31", "1999-12-31", NA, "2001-02-03")),
  SEEN = as.POSIXct(c("2020-01-02 03:04:05", "2021-06-07 08:09:10", "2022-01-01 00:00:00",
                      NA), tz = "UTC"),
  LAB_VAL = c(1.5, NA, 250.25, 0),
  CMNT = c("caf\u00e9", "", "line", "x"),
  stringsAsFactors = FALSE
)
write_sav(cases, "haven.sav")
write_sav(cases, "haven.zsav", compress = "zsav")
write_dta(cases, "haven.dta", version = 15)
write_xpt(cases, "haven.xpt", version = 8)
write_sas(cases, "haven.sas7bdat")
writeLines(c(R.version.string, paste("haven", packageVersion("haven"))), "VERSIONS.txt")
