"""Schemas of the SAS-written samples in ``tests/data/stats/sas/`` (pandas' test files).

Drafted with ``ingest schema draft FILE --name sas_<file>`` and reviewed: the
suggested ranges and levels (values from the data) are left out, since these
schemas check how each file reads, not the data; the kinds are the drafts' (SAS
stores every number as a float, so numbers are floats; MMDDYY10. columns are
dates), except where noted.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from ingest.declare import dataset


class SasAirline(pa.DataFrameModel):
    """One row of the delivered table (6 columns)."""

    # YEAR: typed Float64 in the source
    year: pl.Float64 = pa.Field(metadata={'source': 'YEAR'})
    # Y: typed Float64 in the source
    y: pl.Float64 = pa.Field(metadata={'source': 'Y'})
    # W: typed Float64 in the source
    w: pl.Float64 = pa.Field(metadata={'source': 'W'})
    # R: typed Float64 in the source
    r: pl.Float64 = pa.Field(metadata={'source': 'R'})
    # L: typed Float64 in the source (named labour: a lone l reads as 1)
    labour: pl.Float64 = pa.Field(metadata={'source': 'L'})
    # K: typed Float64 in the source
    k: pl.Float64 = pa.Field(metadata={'source': 'K'})


AIRLINE = dataset(
    SasAirline,
    name='sas_airline',
    version="1",
    null_tokens=('',),
    encodings=('WINDOWS-1252',),
)


class SasProductsales(pa.DataFrameModel):
    """One row of the delivered table (10 columns)."""

    # ACTUAL: typed Float64 in the source
    actual: pl.Float64 = pa.Field(metadata={'source': 'ACTUAL'})
    # PREDICT: typed Float64 in the source
    predict: pl.Float64 = pa.Field(metadata={'source': 'PREDICT'})
    # COUNTRY: 3 distinct values: a category
    country: pl.Categorical = pa.Field(metadata={'source': 'COUNTRY'})
    # REGION: 2 distinct values: a category
    region: pl.Categorical = pa.Field(metadata={'source': 'REGION'})
    # DIVISION: 2 distinct values: a category
    division: pl.Categorical = pa.Field(metadata={'source': 'DIVISION'})
    # PRODTYPE: 2 distinct values: a category
    prodtype: pl.Categorical = pa.Field(metadata={'source': 'PRODTYPE'})
    # PRODUCT: 5 distinct values: a category
    product: pl.Categorical = pa.Field(metadata={'source': 'PRODUCT'})
    # QUARTER: typed Float64 in the source
    quarter: pl.Float64 = pa.Field(metadata={'source': 'QUARTER'})
    # YEAR: typed Float64 in the source
    year: pl.Float64 = pa.Field(metadata={'source': 'YEAR'})
    # MONTH: typed Float64 in the source
    month: pl.Float64 = pa.Field(metadata={'source': 'MONTH'})


PRODUCTSALES = dataset(
    SasProductsales,
    name='sas_productsales',
    version="1",
    null_tokens=('',),
    encodings=('US-ASCII',),
)


class SasTest1(pa.DataFrameModel):
    """One row of the delivered table (100 columns)."""

    # Column1: 1 of 10 rows have no value; typed Float64 in the source
    column1: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column1'})
    # Column2: 1 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column2: str = pa.Field(nullable=True, metadata={'source': 'Column2'})
    # Column3: 1 of 10 rows have no value; typed Float64 in the source
    column3: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column3'})
    # Column4: typed Date in the source
    column4: pl.Date = pa.Field(metadata={'source': 'Column4'})
    # Column5: typed Float64 in the source
    column5: pl.Float64 = pa.Field(metadata={'source': 'Column5'})
    # Column6: text, 3 distinct values
    column6: str = pa.Field(metadata={'source': 'Column6'})
    # Column7: 1 of 10 rows have no value; typed Float64 in the source
    column7: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column7'})
    # Column8: 2 of 10 rows have no value; typed Float64 in the source
    column8: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column8'})
    # Column9: 1 of 10 rows have no value; typed Float64 in the source
    column9: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column9'})
    # Column10: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column10: str = pa.Field(nullable=True, metadata={'source': 'Column10'})
    # Column11: 2 of 10 rows have no value; typed Float64 in the source
    column11: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column11'})
    # Column12: typed Date in the source
    column12: pl.Date = pa.Field(metadata={'source': 'Column12'})
    # Column13: typed Float64 in the source
    column13: pl.Float64 = pa.Field(metadata={'source': 'Column13'})
    # Column14: 1 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column14: str = pa.Field(nullable=True, metadata={'source': 'Column14'})
    # Column15: 1 of 10 rows have no value; typed Float64 in the source
    column15: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column15'})
    # Column16: 2 of 10 rows have no value; typed Float64 in the source
    column16: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column16'})
    # Column17: 1 of 10 rows have no value; typed Float64 in the source
    column17: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column17'})
    # Column18: 2 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column18: str = pa.Field(nullable=True, metadata={'source': 'Column18'})
    # Column19: 1 of 10 rows have no value; typed Float64 in the source
    column19: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column19'})
    # Column20: typed Float64 in the source
    column20: pl.Float64 = pa.Field(metadata={'source': 'Column20'})
    # Column21: 2 of 10 rows have no value; typed Float64 in the source
    column21: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column21'})
    # Column22: 2 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column22: str = pa.Field(nullable=True, metadata={'source': 'Column22'})
    # Column23: typed Float64 in the source
    column23: pl.Float64 = pa.Field(metadata={'source': 'Column23'})
    # Column24: 2 of 10 rows have no value; typed Float64 in the source
    column24: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column24'})
    # Column25: 1 of 10 rows have no value; typed Float64 in the source
    column25: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column25'})
    # Column26: text, 3 distinct values
    column26: str = pa.Field(metadata={'source': 'Column26'})
    # Column27: 1 of 10 rows have no value; typed Float64 in the source
    column27: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column27'})
    # Column28: typed Float64 in the source
    column28: pl.Float64 = pa.Field(metadata={'source': 'Column28'})
    # Column29: 3 of 10 rows have no value; typed Float64 in the source
    column29: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column29'})
    # Column30: text, 4 distinct values
    column30: str = pa.Field(metadata={'source': 'Column30'})
    # Column31: 1 of 10 rows have no value; typed Float64 in the source
    column31: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column31'})
    # Column32: 2 of 10 rows have no value; typed Float64 in the source
    column32: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column32'})
    # Column33: typed Float64 in the source
    column33: pl.Float64 = pa.Field(metadata={'source': 'Column33'})
    # Column34: 3 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column34: str = pa.Field(nullable=True, metadata={'source': 'Column34'})
    # Column35: typed Float64 in the source
    column35: pl.Float64 = pa.Field(metadata={'source': 'Column35'})
    # Column36: 1 of 10 rows have no value; typed Float64 in the source
    column36: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column36'})
    # Column37: 1 of 10 rows have no value; typed Float64 in the source
    column37: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column37'})
    # Column38: text, 4 distinct values
    column38: str = pa.Field(metadata={'source': 'Column38'})
    # Column39: typed Float64 in the source
    column39: pl.Float64 = pa.Field(metadata={'source': 'Column39'})
    # Column40: 1 of 10 rows have no value; typed Float64 in the source
    column40: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column40'})
    # Column41: typed Float64 in the source
    column41: pl.Float64 = pa.Field(metadata={'source': 'Column41'})
    # Column42: 2 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column42: str = pa.Field(nullable=True, metadata={'source': 'Column42'})
    # Column43: typed Float64 in the source
    column43: pl.Float64 = pa.Field(metadata={'source': 'Column43'})
    # Column44: typed Float64 in the source
    column44: pl.Float64 = pa.Field(metadata={'source': 'Column44'})
    # Column45: 1 of 10 rows have no value; typed Float64 in the source
    column45: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column45'})
    # Column46: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column46: str = pa.Field(nullable=True, metadata={'source': 'Column46'})
    # Column47: 2 of 10 rows have no value; typed Float64 in the source
    column47: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column47'})
    # Column48: 3 of 10 rows have no value; typed Float64 in the source
    column48: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column48'})
    # Column49: 1 of 10 rows have no value; typed Float64 in the source
    column49: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column49'})
    # Column50: 3 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column50: str = pa.Field(nullable=True, metadata={'source': 'Column50'})
    # Column51: typed Float64 in the source
    column51: pl.Float64 = pa.Field(metadata={'source': 'Column51'})
    # Column52: typed Float64 in the source
    column52: pl.Float64 = pa.Field(metadata={'source': 'Column52'})
    # Column53: 1 of 10 rows have no value; typed Float64 in the source
    column53: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column53'})
    # Column54: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column54: str = pa.Field(nullable=True, metadata={'source': 'Column54'})
    # Column55: typed Float64 in the source
    column55: pl.Float64 = pa.Field(metadata={'source': 'Column55'})
    # Column56: typed Float64 in the source
    column56: pl.Float64 = pa.Field(metadata={'source': 'Column56'})
    # Column57: 3 of 10 rows have no value; typed Float64 in the source
    column57: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column57'})
    # Column58: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column58: str = pa.Field(nullable=True, metadata={'source': 'Column58'})
    # Column59: 1 of 10 rows have no value; typed Float64 in the source
    column59: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column59'})
    # Column60: 1 of 10 rows have no value; typed Float64 in the source
    column60: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column60'})
    # Column61: 1 of 10 rows have no value; typed Float64 in the source
    column61: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column61'})
    # Column62: 1 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column62: str = pa.Field(nullable=True, metadata={'source': 'Column62'})
    # Column63: typed Float64 in the source
    column63: pl.Float64 = pa.Field(metadata={'source': 'Column63'})
    # Column64: typed Float64 in the source
    column64: pl.Float64 = pa.Field(metadata={'source': 'Column64'})
    # Column65: 4 of 10 rows have no value; typed Float64 in the source
    column65: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column65'})
    # Column66: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column66: str = pa.Field(nullable=True, metadata={'source': 'Column66'})
    # Column67: 1 of 10 rows have no value; typed Float64 in the source
    column67: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column67'})
    # Column68: typed Float64 in the source
    column68: pl.Float64 = pa.Field(metadata={'source': 'Column68'})
    # Column69: typed Float64 in the source
    column69: pl.Float64 = pa.Field(metadata={'source': 'Column69'})
    # Column70: text like every $5. column (drafted as a category: 2 values in 10 rows)
    column70: str = pa.Field(nullable=True, metadata={'source': 'Column70'})
    # Column71: 2 of 10 rows have no value; typed Float64 in the source
    column71: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column71'})
    # Column72: 1 of 10 rows have no value; typed Float64 in the source
    column72: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column72'})
    # Column73: 1 of 10 rows have no value; typed Float64 in the source
    column73: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column73'})
    # Column74: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column74: str = pa.Field(nullable=True, metadata={'source': 'Column74'})
    # Column75: 1 of 10 rows have no value; typed Float64 in the source
    column75: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column75'})
    # Column76: 2 of 10 rows have no value; typed Float64 in the source
    column76: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column76'})
    # Column77: 2 of 10 rows have no value; typed Float64 in the source
    column77: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column77'})
    # Column78: 2 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column78: str = pa.Field(nullable=True, metadata={'source': 'Column78'})
    # Column79: 3 of 10 rows have no value; typed Float64 in the source
    column79: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column79'})
    # Column80: typed Float64 in the source
    column80: pl.Float64 = pa.Field(metadata={'source': 'Column80'})
    # Column81: typed Float64 in the source
    column81: pl.Float64 = pa.Field(metadata={'source': 'Column81'})
    # Column82: 2 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column82: str = pa.Field(nullable=True, metadata={'source': 'Column82'})
    # Column83: 2 of 10 rows have no value; typed Float64 in the source
    column83: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column83'})
    # Column84: typed Float64 in the source
    column84: pl.Float64 = pa.Field(metadata={'source': 'Column84'})
    # Column85: 1 of 10 rows have no value; typed Float64 in the source
    column85: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column85'})
    # Column86: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column86: str = pa.Field(nullable=True, metadata={'source': 'Column86'})
    # Column87: 1 of 10 rows have no value; typed Float64 in the source
    column87: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column87'})
    # Column88: 2 of 10 rows have no value; typed Float64 in the source
    column88: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column88'})
    # Column89: typed Float64 in the source
    column89: pl.Float64 = pa.Field(metadata={'source': 'Column89'})
    # Column90: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column90: str = pa.Field(nullable=True, metadata={'source': 'Column90'})
    # Column91: typed Float64 in the source
    column91: pl.Float64 = pa.Field(metadata={'source': 'Column91'})
    # Column92: typed Float64 in the source
    column92: pl.Float64 = pa.Field(metadata={'source': 'Column92'})
    # Column93: typed Float64 in the source
    column93: pl.Float64 = pa.Field(metadata={'source': 'Column93'})
    # Column94: 4 of 10 rows have no value (spelled as empty); text, 3 distinct values
    column94: str = pa.Field(nullable=True, metadata={'source': 'Column94'})
    # Column95: 1 of 10 rows have no value; typed Float64 in the source
    column95: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column95'})
    # Column96: 3 of 10 rows have no value; typed Float64 in the source
    column96: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column96'})
    # Column97: 1 of 10 rows have no value; typed Float64 in the source
    column97: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column97'})
    # Column98: 1 of 10 rows have no value (spelled as empty); text, 4 distinct values
    column98: str = pa.Field(nullable=True, metadata={'source': 'Column98'})
    # Column99: typed Float64 in the source
    column99: pl.Float64 = pa.Field(metadata={'source': 'Column99'})
    # Column100: 2 of 10 rows have no value; typed Float64 in the source
    column100: pl.Float64 = pa.Field(nullable=True, metadata={'source': 'Column100'})


TEST1 = dataset(
    SasTest1,
    name='sas_test1',
    version="1",
    null_tokens=('',),
    encodings=('WINDOWS-1252',),
)
