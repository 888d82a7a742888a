package detect

import "math"

// countryCentroids holds approximate centroids (latitude, longitude) of the
// countries chatwarden's deployments see most; impossible travel is judged
// only between countries listed here.
var countryCentroids = map[string][2]float64{
	"US": {39.8, -98.6}, "CA": {56.1, -106.3}, "MX": {23.6, -102.6}, "BR": {-14.2, -51.9}, "AR": {-38.4, -63.6},
	"CO": {4.6, -74.3}, "CL": {-35.7, -71.5}, "PE": {-9.2, -75.0}, "GB": {54.0, -2.0}, "IE": {53.4, -8.2},
	"FR": {46.2, 2.2}, "DE": {51.2, 10.5}, "NL": {52.1, 5.3}, "BE": {50.5, 4.5}, "ES": {40.5, -3.7},
	"PT": {39.4, -8.2}, "IT": {41.9, 12.6}, "CH": {46.8, 8.2}, "AT": {47.5, 14.6}, "PL": {51.9, 19.1},
	"CZ": {49.8, 15.5}, "SE": {60.1, 18.6}, "NO": {60.5, 8.5}, "DK": {56.3, 9.5}, "FI": {61.9, 25.7},
	"RO": {45.9, 24.9}, "UA": {48.4, 31.2}, "RU": {61.5, 105.3}, "TR": {38.9, 35.2}, "GR": {39.1, 21.8},
	"IL": {31.0, 34.9}, "AE": {23.4, 53.8}, "SA": {23.9, 45.1}, "EG": {26.8, 30.8}, "NG": {9.1, 8.7},
	"KE": {-0.02, 37.9}, "ZA": {-30.6, 22.9}, "MA": {31.8, -7.1}, "IN": {20.6, 79.0}, "PK": {30.4, 69.3},
	"BD": {23.7, 90.4}, "LK": {7.9, 80.8}, "CN": {35.9, 104.2}, "HK": {22.3, 114.2}, "TW": {23.7, 121.0},
	"JP": {36.2, 138.3}, "KR": {35.9, 127.8}, "PH": {12.9, 121.8}, "VN": {14.1, 108.3}, "TH": {15.9, 101.0},
	"MY": {4.2, 101.9}, "SG": {1.35, 103.8}, "ID": {-0.8, 113.9}, "AU": {-25.3, 133.8}, "NZ": {-40.9, 174.9},
	"KP": {40.3, 127.5}, "IR": {32.4, 53.7}, "BY": {53.7, 27.95},
}

// distanceKM returns the great-circle distance between two countries'
// centroids, and false when either is unknown.
func distanceKM(a, b string) (float64, bool) {
	pa, ok1 := countryCentroids[a]
	pb, ok2 := countryCentroids[b]
	if !ok1 || !ok2 {
		return 0, false
	}
	const r = 6371.0
	rad := math.Pi / 180
	la1, lo1, la2, lo2 := pa[0]*rad, pa[1]*rad, pb[0]*rad, pb[1]*rad
	h := math.Pow(math.Sin((la2-la1)/2), 2) + math.Cos(la1)*math.Cos(la2)*math.Pow(math.Sin((lo2-lo1)/2), 2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h))), true
}
