# The generator's CSV as an R user reads and writes it, every option at R's default.
# Usage: Rscript --vanilla producer_samples.R KIND SOURCE.csv OUT
args <- commandArgs(trailingOnly = TRUE)
kind <- args[1]
cases <- read.csv(args[2])
if (kind == "write.csv") {
  write.csv(cases, args[3])
} else if (kind == "write.table-rownames") {
  write.table(cases, args[3], sep = "\t")
} else if (kind == "write.table") {
  write.table(cases, args[3], sep = "\t", row.names = FALSE)
} else if (kind == "openxlsx") {
  openxlsx::write.xlsx(cases, args[3])
} else {
  stop("unknown kind: ", kind)
}
