//! The kitchens (`locations.parquet`): names and coordinates for messages, maps and the
//! generator. Built-in values stand in when a dataset has no `locations.parquet`.

use std::path::Path;

use super::DatasetError;
use super::columns::{ColumnSpec, Kind, read_columns};

/// One kitchen, as `locations.parquet` describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Kitchen {
    pub location_id: u8,
    pub code: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
}

/// The four kitchens of Casper's Kitchens.
pub fn builtin_kitchens() -> Vec<Kitchen> {
    [
        (1, "sf", "San Francisco", 37.791024, -122.392865),
        (2, "sv", "Silicon Valley", 37.402937, -122.110740),
        (3, "bellevue", "Bellevue", 47.614422, -122.338964),
        (4, "chicago", "Chicago", 41.890664, -87.632079),
    ]
    .into_iter()
    .map(|(location_id, code, name, lat, lon)| Kitchen {
        location_id,
        code: code.into(),
        name: name.into(),
        lat,
        lon,
    })
    .collect()
}

const COLUMNS: [ColumnSpec; 5] = [
    ColumnSpec {
        name: "location_id",
        kind: Kind::Int,
        required: true,
    },
    ColumnSpec {
        name: "name",
        kind: Kind::Text,
        required: true,
    },
    ColumnSpec {
        name: "lat",
        kind: Kind::Float,
        required: true,
    },
    ColumnSpec {
        name: "lon",
        kind: Kind::Float,
        required: true,
    },
    ColumnSpec {
        name: "location_code",
        kind: Kind::Text,
        required: false,
    },
];

/// Reads `locations.parquet`.
pub fn read_kitchens(path: &Path) -> Result<Vec<Kitchen>, DatasetError> {
    let mut kitchens = Vec::new();
    read_columns(
        path,
        &COLUMNS,
        |_| (),
        |b, ()| {
            let (ids, names) = (b.int(0).expect("required"), b.text(1).expect("required"));
            let (lats, lons) = (b.float(2).expect("required"), b.float(3).expect("required"));
            let codes = b.text(4);
            for i in 0..b.len {
                let bad = |column: &str, message: &str| DatasetError::BadValue {
                    path: path.into(),
                    column: column.into(),
                    row: b.first_row + i,
                    message: message.into(),
                };
                use arrow_array::Array;
                if ids.is_null(i) || names.is_null(i) || lats.is_null(i) || lons.is_null(i) {
                    return Err(bad("location_id/name/lat/lon", "null in a required column"));
                }
                let location_id =
                    u8::try_from(ids.value(i)).map_err(|_| bad("location_id", "outside 0..255"))?;
                let name = names.value(i).to_string();
                let code = match codes {
                    Some(c) if !c.is_null(i) => c.value(i).to_string(),
                    _ => name.to_lowercase().replace(' ', "_"),
                };
                kitchens.push(Kitchen {
                    location_id,
                    code,
                    name,
                    lat: lats.value(i),
                    lon: lons.value(i),
                });
            }
            Ok(())
        },
    )?;
    kitchens.sort_by_key(|k| k.location_id);
    Ok(kitchens)
}
