//! The front-end, embedded in the binary: our page, script and styles as written in ui/src/,
//! and uPlot as ui/build.sh copied it from npm (ui/package-lock.json) into ui/dist/.

pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../ui/src/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/src/app.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/src/style.css"),
    },
    Asset {
        path: "uplot.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/dist/uplot.min.js"),
    },
    Asset {
        path: "uplot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/dist/uplot.min.css"),
    },
];

pub fn get(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
