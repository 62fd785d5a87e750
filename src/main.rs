fn main() {
    let dir = std::path::Path::new("config/demo");
    std::fs::write(dir.join("wards.geojson"), ioc_router::wards::demo::wards_geojson()).unwrap();
    std::fs::write(dir.join("cameras.csv"), ioc_router::wards::demo::cameras_csv()).unwrap();
}
